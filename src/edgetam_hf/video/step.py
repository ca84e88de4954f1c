"""The tracking step: one frame, a batch of objects and the memories they read -> their masks,
object pointers and the frame's new memories (original: `SAM2Base.track_step` with
`run_mem_encoder=True`).

`track_step` reads and returns tensors only, with shapes fixed by the slot counts, so that it can
be compiled, captured or exported once per slot layout; which memories fill the slots (the
original's selection rule) is `edgetam_hf.tracking`'s business. It keeps gradients: inference
(`video.propagation`) runs it under `torch.no_grad()`, training (`training.video_clip`)
differentiates it. The hole filling of the output (`_run_single_frame_inference`) is the
tracker's, after the step: the memory is encoded from the mask as predicted.

Inputs (B objects; S memory slots of T tokens; P pointer slots; D = mem_dim, H = hidden):
    features            `FrameFeatures` of the frame, batch 1 (shared by the objects) or B
    slots               `MemorySlots`: memory_tokens (B, S, T, D), memory_temporal_slot (S,),
                        memory_valid (B, S) bool or None, object_pointers (B, P, H),
                        pointer_temporal_distance (P,), pointer_valid (B, P) bool or None;
                        every object needs at least one valid slot
    memory_position     (1, T, D) position encoding of a memory's tokens (the same for all)
    num_frames          the video's length (it scales temporal pointer encodings, if enabled)
    multimask_output    decode three masks and keep the best (EdgeTAM: True when tracking)
Outputs (`TrackStepOutput`):
    mask_logits (B, 1, 256, 256) float32 as predicted; object_pointer (B, H);
    object_score_logits (B, 1) float32; memory_tokens (B, T, D) and memory_position (B, T, D),
    the frame's new memory.
"""

from typing import TYPE_CHECKING, NamedTuple

import torch

from .types import FrameFeatures, MemoryContext, MemorySlots

if TYPE_CHECKING:
    from ..modeling_video import EdgeTamVideoModel


class TrackStepOutput(NamedTuple):
    mask_logits: torch.Tensor  # (B, 1, 256, 256) float32 as predicted (holes not filled)
    object_pointer: torch.Tensor  # (B, hidden)
    object_score_logits: torch.Tensor  # (B, 1) float32
    memory_tokens: torch.Tensor  # (B, 512, mem_dim) the frame's new memory
    memory_position: torch.Tensor  # (B, 512, mem_dim)


def track_step(
    model: "EdgeTamVideoModel",
    features: FrameFeatures,
    slots: MemorySlots,
    memory_position: torch.Tensor,
    num_frames: int,
    multimask_output: bool,
) -> TrackStepOutput:
    """Tracks a batch of objects on one frame from their memory slots (see the module docstring)."""
    memory = memory_context(model, slots, memory_position, num_frames)
    prediction = model.predict_from_prompts(features, memory, None, None, None, multimask_output)
    encoded = model.encode_memory(
        features,
        prediction.high_res_mask_logits,
        prediction.object_score_logits,
        binarize_mask=False,
    )
    return TrackStepOutput(prediction.mask_logits, prediction.object_pointer, prediction.object_score_logits, *encoded)


def memory_context(
    model: "EdgeTamVideoModel", slots: MemorySlots, memory_position: torch.Tensor, num_frames: int
) -> MemoryContext:
    """Lays the slots out as the memory attention reads them: every memory slot's tokens with
    the position encoding of its temporal slot, then the pointers, each cut into H / D tokens."""
    batch_size, num_slots, tokens_per_memory, memory_dim = slots.memory_tokens.shape
    dtype = model.compute_dtype
    num_maskmem = model.config.num_maskmem
    # Stored in the memory dtype (bfloat16 by default), computed in the model's dtype.
    memory_tokens = slots.memory_tokens.to(dtype).flatten(1, 2)  # (B, S * T, D)
    temporal = model.memory_temporal_positional_encoding[num_maskmem - 1 - slots.memory_temporal_slot]
    memory_positions = memory_position + temporal.view(num_slots, 1, memory_dim)  # (S, T, D)
    memory_positions = memory_positions.flatten(0, 1)[None].expand(batch_size, -1, -1)

    num_pointer_slots = slots.object_pointers.shape[1]
    tokens_per_pointer = slots.object_pointers.shape[-1] // memory_dim
    pointers = slots.object_pointers.to(dtype).reshape(batch_size, num_pointer_slots * tokens_per_pointer, memory_dim)
    pointer_positions = model.object_pointer_position(slots.pointer_temporal_distance, num_frames, batch_size)
    pointer_positions = pointer_positions.repeat_interleave(tokens_per_pointer, dim=1)

    mask = None
    if slots.memory_valid is not None or slots.pointer_valid is not None:
        memory_valid = _all_valid_if_none(slots.memory_valid, batch_size, num_slots, memory_tokens.device)
        pointer_valid = _all_valid_if_none(slots.pointer_valid, batch_size, num_pointer_slots, memory_tokens.device)
        mask = torch.cat(
            (
                memory_valid.repeat_interleave(tokens_per_memory, dim=1),
                pointer_valid.repeat_interleave(tokens_per_pointer, dim=1),
            ),
            dim=1,
        )
    return MemoryContext(
        torch.cat((memory_tokens, pointers), dim=1),
        torch.cat((memory_positions, pointer_positions), dim=1),
        num_slots,
        pointers.shape[1],
        mask,
    )


def _all_valid_if_none(valid: torch.Tensor | None, batch_size: int, num_slots: int, device) -> torch.Tensor:
    if valid is not None:
        return valid
    return torch.ones(batch_size, num_slots, dtype=torch.bool, device=device)
