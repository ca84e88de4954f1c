"""Which stored memories a tracked frame reads, for the onnxruntime tracker (plain Python, no
torch): the rule of `edgetam_hf.video.memory_bank`, the original's
`SAM2Base._prepare_memory_conditioned_features` step 1.

Spatial memories, in this order: the selected conditioning frames (temporal slot 0), then the
`num_maskmem - 1` frames just before the frame in the direction of tracking, oldest first
(temporal slots 1 .. num_maskmem - 1), where a result exists. Object pointers: the selected
conditioning frames not in the future (by their distance in frames), then up to
`max_object_pointers_in_encoder - 1` frames before it, nearest first. A conditioning frame left
out of the selection serves as an ordinary recent frame.
"""

from typing import NamedTuple

import numpy as np


class PlannedMemory(NamedTuple):
    position: int  # temporal slot of a spatial memory; distance in frames of a pointer
    is_conditioning: bool  # where the result is stored
    frame_idx: int


class FramePlan(NamedTuple):
    spatial: tuple[PlannedMemory, ...]
    pointers: tuple[PlannedMemory, ...]


def closest_conditioning_frames(frame_idx: int, conditioning: list[int], max_num: int) -> tuple[list[int], list[int]]:
    """(selected, left out): all of them when `max_num` is -1 or not exceeded; else the nearest one
    before, the nearest at or after, then the nearest others (original: `select_closest_cond_frames`)."""
    if max_num == -1 or len(conditioning) <= max_num:
        return list(conditioning), []
    if max_num < 2:
        raise ValueError(f"max_cond_frame_num must be -1 or at least 2, got {max_num}")
    earlier = [t for t in conditioning if t < frame_idx]
    later = [t for t in conditioning if t >= frame_idx]
    chosen = ([max(earlier)] if earlier else []) + ([min(later)] if later else [])
    rest = sorted((t for t in conditioning if t not in chosen), key=lambda t: abs(t - frame_idx))
    chosen += rest[: max_num - len(chosen)]
    return chosen, [t for t in conditioning if t not in chosen]


def plan_frame(
    settings: dict, conditioning: list[int], tracked: set[int] | dict, frame_idx: int, reverse: bool, num_frames: int
) -> FramePlan:
    """The memories one object reads on `frame_idx`; `conditioning` in the order stored,
    `tracked` the frames with a tracked result; `settings` the manifest's "video" entry."""
    selected, left_out = closest_conditioning_frames(frame_idx, conditioning, settings["max_cond_frame_num"])
    towards_done = 1 if reverse else -1

    def stored(t: int, position: int) -> PlannedMemory | None:
        if t in tracked:
            return PlannedMemory(position, False, t)
        return PlannedMemory(position, True, t) if t in left_out else None

    num_maskmem = settings["num_maskmem"]
    spatial = [PlannedMemory(0, True, t) for t in selected]
    spatial += [stored(frame_idx + towards_done * (num_maskmem - slot), slot) for slot in range(1, num_maskmem)]
    not_future = (lambda t: t >= frame_idx) if reverse else (lambda t: t <= frame_idx)
    pointers = [PlannedMemory(abs(frame_idx - t), True, t) for t in selected if not_future(t)]
    for distance in range(1, min(num_frames, settings["max_object_pointers_in_encoder"])):
        t = frame_idx + towards_done * distance
        if not 0 <= t < num_frames:
            break
        pointers.append(stored(t, distance))
    return FramePlan(tuple(m for m in spatial if m is not None), tuple(m for m in pointers if m is not None))


def memory_window(settings: dict) -> int:
    """How many tracked frames' results behind the newest one a tracker keeps so that the next
    frame, or a correction of the newest, finds every memory and pointer it reads (`plan_frame`
    reads at most `num_maskmem - 1` and `max_object_pointers_in_encoder - 1` frames back)."""
    return max(settings["num_maskmem"], settings["max_object_pointers_in_encoder"])


def fill_slots(
    plan: FramePlan, stored: list[list], slot_shapes: tuple[tuple[int, ...], tuple[int, ...]], largest_distance: int
) -> dict[str, np.ndarray]:
    """The tracking step's memory inputs for a batch of objects reading `plan`: `stored[row]` holds
    each object's stored results (`memory_tokens`, `object_pointer`) in the order of
    `plan.spatial + plan.pointers`; slots past the plan are zero and invalid.

    `slot_shapes` is the export's, per object: (S, T, mem_dim) memories and (P, hidden) pointers. A
    pointer's temporal position is its distance over `largest_distance` (the model's rule:
    min(num_frames, max pointers) - 1, at least 1).
    """
    memory_shape, pointer_shape = slot_shapes
    num_memory_slots, num_pointer_slots = memory_shape[0], pointer_shape[0]
    batch, num_spatial = len(stored), len(plan.spatial)
    memory_tokens = np.zeros((batch, *memory_shape), dtype=np.float32)
    pointers = np.zeros((batch, *pointer_shape), dtype=np.float32)
    for row, results in enumerate(stored):
        for slot, result in enumerate(results[:num_spatial]):
            memory_tokens[row, slot] = result.memory_tokens
        for slot, result in enumerate(results[num_spatial:]):
            pointers[row, slot] = result.object_pointer
    temporal_slot = np.zeros(num_memory_slots, dtype=np.int64)
    temporal_slot[:num_spatial] = [entry.position for entry in plan.spatial]
    pointer_position = np.zeros(num_pointer_slots, dtype=np.float32)
    pointer_position[: len(plan.pointers)] = [np.float32(entry.position) / np.float32(largest_distance) for entry in plan.pointers]
    return {
        "memory_tokens": memory_tokens,
        "memory_temporal_slot": temporal_slot,
        "memory_valid": np.broadcast_to(np.arange(num_memory_slots) < num_spatial, (batch, num_memory_slots)).copy(),
        "object_pointers": pointers,
        "pointer_temporal_position": pointer_position,
        "pointer_valid": np.broadcast_to(np.arange(num_pointer_slots) < len(plan.pointers), (batch, num_pointer_slots)).copy(),
    }
