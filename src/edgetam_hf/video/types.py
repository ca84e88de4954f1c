"""The tensors one tracking step passes around: a frame's features, the memories it reads, a
prediction for a batch of objects and the memory encoded from it."""

from typing import NamedTuple

import torch


class FrameFeatures(NamedTuple):
    """A frame's image features as the video model uses them (original: `_get_image_feature`)."""

    high_resolution_features: tuple[torch.Tensor, torch.Tensor]  # (B, 32, 256, 256), (B, 64, 128, 128)
    vision_features: torch.Tensor  # (B, 256, 64, 64) lowest FPN level, no no-memory embedding
    vision_position: torch.Tensor  # (B, 256, 64, 64) its sine position encoding

    def expand(self, batch_size: int) -> "FrameFeatures":
        """One frame's features shared by `batch_size` objects (a view, as the original expands)."""
        s0, s1 = self.high_resolution_features
        return FrameFeatures(
            (s0.expand(batch_size, -1, -1, -1), s1.expand(batch_size, -1, -1, -1)),
            self.vision_features.expand(batch_size, -1, -1, -1),
            self.vision_position.expand(batch_size, -1, -1, -1),
        )

    def to(self, device) -> "FrameFeatures":
        s0, s1 = self.high_resolution_features
        return FrameFeatures(
            (s0.to(device), s1.to(device)), self.vision_features.to(device), self.vision_position.to(device)
        )


class FramePrediction(NamedTuple):
    """One frame's prediction for a batch of objects (original: the outputs of `track_step`)."""

    mask_logits: torch.Tensor  # (B, 1, 256, 256) low-resolution logits of the chosen mask
    high_res_mask_logits: torch.Tensor  # (B, 1, 1024, 1024) the same mask upsampled, fed to memory
    object_pointer: torch.Tensor  # (B, hidden)
    object_score_logits: torch.Tensor  # (B, 1)


class EncodedMemory(NamedTuple):
    """A frame's memory per object: perceiver tokens and their position encoding."""

    memory_tokens: torch.Tensor  # (B, num_latents + num_latents_2d, mem_dim) = (B, 512, 64)
    memory_position: torch.Tensor  # (B, 512, 64)


class MemorySlots(NamedTuple):
    """The memories a batch of objects reads on one frame, in a fixed number of slots.

    A slot whose `*_valid` entry is False is read by nothing (its tensors may hold anything);
    a streaming or exported step keeps the slot counts fixed and fills the slots as memories come.
    """

    memory_tokens: torch.Tensor  # (B, num_memory_slots, tokens_per_memory, mem_dim), any float dtype
    memory_temporal_slot: torch.Tensor  # (num_memory_slots,) int64 t_pos in [0, num_maskmem): 0 conditioning
    memory_valid: torch.Tensor | None  # (B, num_memory_slots) bool; None: all valid
    object_pointers: torch.Tensor  # (B, num_pointer_slots, hidden)
    pointer_temporal_distance: torch.Tensor  # (num_pointer_slots,) int64 frames between pointer and frame
    pointer_valid: torch.Tensor | None  # (B, num_pointer_slots) bool; None: all valid


class MemoryContext(NamedTuple):
    """The memory attention's input for a batch of objects: the slots' tokens laid out in a row."""

    memory: torch.Tensor  # (B, num_tokens, mem_dim): spatial memories, then object-pointer tokens
    memory_position: torch.Tensor  # (B, num_tokens, mem_dim), temporal encodings included
    num_spatial_memories: int
    num_object_pointer_tokens: int
    memory_mask: torch.Tensor | None = None  # (B, num_tokens) bool; None: every token is read
