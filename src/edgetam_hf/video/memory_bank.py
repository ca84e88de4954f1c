"""The stored memories a batch of objects reads on one frame, gathered into the step's memory
slots (which ones: `edgetam_hf.tracking.rules.memory_plan`)."""

import torch

from ..tracking.records import FrameResult
from ..tracking.rules import MemoryPlan
from .types import MemorySlots


def gather_memory_slots(
    plan: MemoryPlan,
    stored: list[list[FrameResult]],
    device: torch.device,
    num_memory_slots: int | None = None,
    num_pointer_slots: int | None = None,
) -> MemorySlots:
    """The planned memories of a batch of objects (`stored[row]`: one object's results in the
    order of `plan.entries`), on `device`: exactly filled slots, or with `num_memory_slots` /
    `num_pointer_slots` that many, the slots past the plan zero and marked invalid (a fixed
    layout: one compiled graph for every memory length)."""
    num_spatial, num_pointers = len(plan.spatial), len(plan.pointers)
    fixed = num_memory_slots is not None or num_pointer_slots is not None  # validity masks even when full
    num_memory_slots = num_spatial if num_memory_slots is None else num_memory_slots
    num_pointer_slots = num_pointers if num_pointer_slots is None else num_pointer_slots
    if num_memory_slots < num_spatial or num_pointer_slots < num_pointers:
        raise ValueError(
            f"the plan reads {num_spatial} memories and {num_pointers} object pointers, more than the "
            f"{num_memory_slots} and {num_pointer_slots} slots given"
        )
    # A row of `stored` may hold several objects (training keeps a clip's objects in one result).
    memory_tokens = torch.stack(
        [torch.cat([row[slot].memory_tokens for row in stored]) for slot in range(num_spatial)], dim=1
    ).to(device)  # (B, num_spatial, 512, mem_dim), in the memory dtype
    if num_pointers:
        object_pointers = torch.stack(
            [torch.cat([row[slot].object_pointer for row in stored]) for slot in range(num_spatial, len(plan.entries))],
            dim=1,
        ).to(device)  # (B, num_pointers, hidden)
    else:
        hidden_size = stored[0][0].object_pointer.shape[-1]
        object_pointers = torch.zeros(memory_tokens.shape[0], 0, hidden_size, device=device)
    batch_size = memory_tokens.shape[0]
    memory_tokens = _pad_slots(memory_tokens, num_memory_slots)
    object_pointers = _pad_slots(object_pointers, num_pointer_slots)
    return MemorySlots(
        memory_tokens=memory_tokens,
        memory_temporal_slot=_padded_positions([entry.position for entry in plan.spatial], num_memory_slots, device),
        memory_valid=_valid(num_spatial, num_memory_slots, batch_size, device) if fixed else None,
        object_pointers=object_pointers,
        pointer_temporal_distance=_padded_positions([entry.position for entry in plan.pointers], num_pointer_slots, device),
        pointer_valid=_valid(num_pointers, num_pointer_slots, batch_size, device) if fixed else None,
    )


def _pad_slots(values: torch.Tensor, num_slots: int) -> torch.Tensor:
    """(B, n, ...) -> (B, num_slots, ...), zeros after the n filled slots."""
    missing = num_slots - values.shape[1]
    if missing == 0:
        return values
    return torch.cat((values, values.new_zeros(values.shape[0], missing, *values.shape[2:])), dim=1)


def _padded_positions(positions: list[int], num_slots: int, device) -> torch.Tensor:
    return torch.tensor(positions + [0] * (num_slots - len(positions)), dtype=torch.long, device=device)


def _valid(num_filled: int, num_slots: int, batch_size: int, device) -> torch.Tensor:
    return (torch.arange(num_slots, device=device) < num_filled).expand(batch_size, num_slots)
