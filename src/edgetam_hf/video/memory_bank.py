"""Which memories a tracked frame attends to, gathered into the step's memory slots (original:
step 1 of `SAM2Base._prepare_memory_conditioned_features`)."""

from typing import NamedTuple

import torch

from .records import FrameResult, FrameResults, TrackedObject
from .session import EdgeTamVideoInferenceSession
from .types import MemorySlots


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


def memory_window(config) -> int:
    """How far behind a tracked frame (in the direction of tracking) the non-conditioning results
    it reads may lie: `num_maskmem - 1` spatial memories, `max_object_pointers_in_encoder - 1`
    pointers (see `memory_plan`). A bounded session keeps this many frames behind the last one."""
    return max(config.num_maskmem, config.max_object_pointers_in_encoder) - 1


def frames_read(config, frame_idx: int, reverse: bool, num_frames: int) -> list[int]:
    """The frames whose tracked results `memory_plan` may read for `frame_idx`, nearest first."""
    step = 1 if reverse else -1
    frames = (frame_idx + step * distance for distance in range(1, memory_window(config) + 1))
    return [t for t in frames if 0 <= t < num_frames]


def _stored_entry(results: FrameResults, unselected: list[int], frame_idx: int, position: int) -> MemoryEntry | None:
    """A tracked result, or else a conditioning one that was not selected (it then serves as an
    ordinary recent frame)."""
    if frame_idx in results.tracked:
        return MemoryEntry(position, False, frame_idx)
    if frame_idx in unselected:
        return MemoryEntry(position, True, frame_idx)
    return None


def gather_memory_slots(
    session: EdgeTamVideoInferenceSession, objects: list[TrackedObject], plan: MemoryPlan
) -> MemorySlots:
    """The planned memories of `objects` (one row each) as exactly filled slots, in plan order."""
    device = session.inference_device
    memory_tokens = torch.stack(
        [torch.cat([stored_result(tracked, entry).memory_tokens for tracked in objects]) for entry in plan.spatial],
        dim=1,
    ).to(device)  # (B, num_spatial, 512, mem_dim), in the memory dtype
    if plan.pointers:
        object_pointers = torch.stack(
            [torch.cat([stored_result(tracked, entry).object_pointer for tracked in objects]) for entry in plan.pointers],
            dim=1,
        ).to(device)  # (B, num_pointers, hidden)
    else:
        hidden_size = stored_result(objects[0], plan.spatial[0]).object_pointer.shape[-1]
        object_pointers = torch.zeros(len(objects), 0, hidden_size, device=device)
    return MemorySlots(
        memory_tokens=memory_tokens,
        memory_temporal_slot=torch.tensor([entry.position for entry in plan.spatial], device=device),
        memory_valid=None,
        object_pointers=object_pointers,
        pointer_temporal_distance=torch.tensor([entry.position for entry in plan.pointers], dtype=torch.long, device=device),
        pointer_valid=None,
    )


def stored_result(tracked: TrackedObject, entry: MemoryEntry) -> FrameResult:
    """The stored result a memory entry points to."""
    return tracked.results.of_kind(entry.is_conditioning)[entry.frame_idx]
