"""The stored memories a batch of objects reads on one frame, gathered into the step's memory
slots (which ones: `edgetam_hf.tracking.rules.memory_plan`)."""

import torch

from ..tracking.records import FrameResult
from ..tracking.rules import MemoryPlan
from .types import MemorySlots


def gather_memory_slots(plan: MemoryPlan, stored: list[list[FrameResult]], device: torch.device) -> MemorySlots:
    """The planned memories of a batch of objects (`stored[row]`: one object's results in the
    order of `plan.entries`) as exactly filled slots, on `device`."""
    num_spatial = len(plan.spatial)
    memory_tokens = torch.stack(
        [torch.cat([row[slot].memory_tokens for row in stored]) for slot in range(num_spatial)], dim=1
    ).to(device)  # (B, num_spatial, 512, mem_dim), in the memory dtype
    if plan.pointers:
        object_pointers = torch.stack(
            [torch.cat([row[slot].object_pointer for row in stored]) for slot in range(num_spatial, len(plan.entries))],
            dim=1,
        ).to(device)  # (B, num_pointers, hidden)
    else:
        hidden_size = stored[0][0].object_pointer.shape[-1]
        object_pointers = torch.zeros(len(stored), 0, hidden_size, device=device)
    return MemorySlots(
        memory_tokens=memory_tokens,
        memory_temporal_slot=torch.tensor([entry.position for entry in plan.spatial], device=device),
        memory_valid=None,
        object_pointers=object_pointers,
        pointer_temporal_distance=torch.tensor([entry.position for entry in plan.pointers], dtype=torch.long, device=device),
        pointer_valid=None,
    )
