"""Which memories a tracked frame attends to, and their assembly into the memory attention's input
(original: step 1 of `SAM2Base._prepare_memory_conditioned_features`)."""

from typing import NamedTuple

import torch

from .session import EdgeTamVideoInferenceSession, FrameResult, FrameResults, TrackedObject


class MemoryContext(NamedTuple):
    """The memory bank entries one frame attends to, for a batch of objects."""

    memory: torch.Tensor  # (B, num_tokens, mem_dim): spatial memories, then object-pointer tokens
    memory_position: torch.Tensor  # (B, num_tokens, mem_dim), temporal encodings included
    num_spatial_memories: int
    num_object_pointer_tokens: int


class MemoryEntry(NamedTuple):
    """One stored result the frame reads: `(position, is_conditioning, frame_idx)`. For a spatial
    memory the position is its temporal slot t_pos (0 for conditioning frames); for an object
    pointer, its distance in frames."""

    position: int
    is_conditioning: bool
    frame_idx: int


class MemoryPlan(NamedTuple):
    """The memories of one frame for one object, in the original's order. Objects with equal plans
    are tracked in one batch."""

    spatial: tuple[MemoryEntry, ...]
    pointers: tuple[MemoryEntry, ...]


def select_closest_conditioning_frames(
    frame_idx: int, conditioning_frames: list[int], max_num: int
) -> tuple[list[int], list[int]]:
    """Up to `max_num` conditioning frames, -1 for all (original: `select_closest_cond_frames`):
    the closest one before the frame, the closest one at or after it, then the temporally
    closest others. Returns `(selected, unselected)`, selected in that order."""
    if max_num == -1 or len(conditioning_frames) <= max_num:
        return list(conditioning_frames), []
    if max_num < 2:
        raise ValueError(f"max_cond_frame_num must be -1 or at least 2, got {max_num}")
    selected = []
    before = [t for t in conditioning_frames if t < frame_idx]
    if before:
        selected.append(max(before))
    after = [t for t in conditioning_frames if t >= frame_idx]
    if after:
        selected.append(min(after))
    others = sorted((t for t in conditioning_frames if t not in selected), key=lambda t: abs(t - frame_idx))
    selected.extend(others[: max_num - len(selected)])
    return selected, [t for t in conditioning_frames if t not in selected]


def memory_plan(config, results: FrameResults, frame_idx: int, reverse: bool, num_frames: int) -> MemoryPlan:
    """The memories an object reads when its frame `frame_idx` is tracked.

    Spatial: every selected conditioning frame (t_pos 0), then the `num_maskmem - 1` frames just
    before it in the direction of tracking, oldest first (t_pos 1 .. num_maskmem - 1), where a
    result exists. Object pointers: the selected conditioning frames not in the future, then up
    to `max_object_pointers_in_encoder - 1` frames before it.
    """
    selected, unselected = select_closest_conditioning_frames(
        frame_idx, list(results.conditioning), config.max_cond_frame_num
    )
    step = 1 if reverse else -1  # towards the frames already tracked
    spatial = [MemoryEntry(0, True, t) for t in selected]
    for t_pos in range(1, config.num_maskmem):
        previous = frame_idx + step * (config.num_maskmem - t_pos)
        entry = _stored_entry(results, unselected, previous, t_pos)
        if entry is not None:
            spatial.append(entry)

    is_past = (lambda t: t >= frame_idx) if reverse else (lambda t: t <= frame_idx)
    pointers = [MemoryEntry(abs(frame_idx - t), True, t) for t in selected if is_past(t)]
    for distance in range(1, min(num_frames, config.max_object_pointers_in_encoder)):
        previous = frame_idx + step * distance
        if previous < 0 or previous >= num_frames:
            break
        entry = _stored_entry(results, unselected, previous, distance)
        if entry is not None:
            pointers.append(entry)
    return MemoryPlan(tuple(spatial), tuple(pointers))


def _stored_entry(results: FrameResults, unselected: list[int], frame_idx: int, position: int) -> MemoryEntry | None:
    """A tracked result, or else a conditioning one that was not selected (it then serves as an
    ordinary recent frame)."""
    if frame_idx in results.tracked:
        return MemoryEntry(position, False, frame_idx)
    if frame_idx in unselected:
        return MemoryEntry(position, True, frame_idx)
    return None


def gather_memory(
    model, session: EdgeTamVideoInferenceSession, objects: list[TrackedObject], plan: MemoryPlan
) -> MemoryContext:
    """Stacks the planned memories of `objects` (one row each) into the memory attention's input."""
    device = session.inference_device
    dtype = model.memory_temporal_positional_encoding.dtype
    num_maskmem = model.config.num_maskmem
    batch_size = len(objects)
    tokens, positions = [], []
    for entry in plan.spatial:
        # Stored in the memory dtype (bfloat16 by default), computed in the model's dtype.
        memory = torch.cat([stored_result(tracked, entry).memory_tokens for tracked in objects]).to(device, dtype)
        tokens.append(memory)  # (B, 512, mem_dim)
        temporal = model.memory_temporal_positional_encoding[num_maskmem - entry.position - 1].view(1, 1, -1)
        positions.append((session.memory_position + temporal).expand(batch_size, -1, -1))
    num_pointer_tokens = 0
    if plan.pointers:
        pointers = torch.stack(
            [torch.cat([stored_result(tracked, entry).object_pointer for tracked in objects]) for entry in plan.pointers],
            dim=1,
        ).to(device)  # (B, num_pointers, hidden)
        pointer_position = model.object_pointer_position(
            [entry.position for entry in plan.pointers], session.num_frames, batch_size
        )
        memory_dim = pointer_position.shape[-1]
        # A pointer wider than a memory token becomes hidden // mem_dim consecutive tokens.
        tokens_per_pointer = pointers.shape[-1] // memory_dim
        pointers = pointers.reshape(batch_size, -1, memory_dim)
        pointer_position = pointer_position.repeat_interleave(tokens_per_pointer, dim=1)
        tokens.append(pointers)
        positions.append(pointer_position)
        num_pointer_tokens = pointers.shape[1]
    return MemoryContext(torch.cat(tokens, dim=1), torch.cat(positions, dim=1), len(plan.spatial), num_pointer_tokens)


def stored_result(tracked: TrackedObject, entry: MemoryEntry) -> FrameResult:
    """The stored result a memory entry points to."""
    return tracked.results.of_kind(entry.is_conditioning)[entry.frame_idx]
