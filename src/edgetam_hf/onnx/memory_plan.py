"""The tracking step's memory inputs for the onnxruntime tracker (plain NumPy, no torch): the
memories `edgetam_hf.tracking.rules.memory_plan` selects, in the export's fixed slots with a
validity mask."""

import numpy as np

from ..tracking.records import FrameResult
from ..tracking.rules import MemoryPlan, TrackingRules


def memory_window(settings: dict) -> int:
    """The fewest `max_stored_frames` that keeps every memory a later frame reads (`settings`: a
    manifest's "video" entry)."""
    return TrackingRules.read(settings).memory_window


def fill_slots(
    plan: MemoryPlan, stored: list[list[FrameResult]], slot_shapes: tuple[tuple[int, ...], tuple[int, ...]], largest_distance: int
) -> dict[str, np.ndarray]:
    """The tracking step's memory inputs for a batch of objects reading `plan`: `stored[row]` holds
    each object's stored results in the order of `plan.entries`; slots past the plan are zero
    and invalid.

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
            memory_tokens[row, slot] = result.memory_tokens[0]
        for slot, result in enumerate(results[num_spatial:]):
            pointers[row, slot] = result.object_pointer[0]
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
