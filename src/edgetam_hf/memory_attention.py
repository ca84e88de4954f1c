"""Memory attention: conditions the current frame's features on the memories of earlier frames."""

import torch
from torch import nn
from transformers.activations import ACT2FN

from .configuration import EdgeTamVideoConfig
from .layers import ProjectedAttention, activate, add_residual, overwrites_activations
from .position_encoding import AxialRotaryEncoding, apply_axial_rotary


def rotate_memory_keys(
    keys: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    num_spatial_memories: int,
    num_object_pointer_tokens: int,
) -> torch.Tensor:
    """Applies the key rotary encoding to the memory tokens that have a place on the key grid.

    keys: (batch, heads, num_memory_tokens, head_dim), laid out as `num_spatial_memories` frames
    of equal length followed by `num_object_pointer_tokens` object-pointer tokens. In each frame
    the last `len(cos)` tokens (the 2D perceiver latents, a 16x16 grid) are rotated by the
    (len(cos), head_dim // 2) tables; the tokens before them (the global latents) and the object
    pointers are left as they are (original: `apply_rotary_enc_v2` with `rope_k_repeat`).
    """
    num_frame_tokens = keys.shape[-2] - num_object_pointer_tokens
    if num_frame_tokens == 0:
        return keys
    if num_spatial_memories <= 0 or num_frame_tokens % num_spatial_memories:
        raise ValueError(
            f"{num_frame_tokens} memory tokens do not split into {num_spatial_memories} frames of equal length"
        )
    frames, object_pointers = keys.split((num_frame_tokens, num_object_pointer_tokens), dim=-2)
    # (batch, heads, frames, tokens per frame, head_dim): the same tables serve every frame.
    frames = frames.unflatten(-2, (num_spatial_memories, -1))
    num_unrotated = frames.shape[-2] - cos.shape[0]
    if num_unrotated < 0:
        raise ValueError(f"a memory frame has {frames.shape[-2]} tokens, fewer than the {cos.shape[0]} key positions")
    if num_unrotated == 0:
        frames = apply_axial_rotary(frames, cos, sin)
    else:
        unrotated, rotated = frames.split((num_unrotated, cos.shape[0]), dim=-2)
        frames = torch.cat((unrotated, apply_axial_rotary(rotated, cos, sin)), dim=-2)
    frames = frames.flatten(2, 3)
    if num_object_pointer_tokens == 0:
        return frames
    return torch.cat((frames, object_pointers), dim=-2)


class RotaryAttention(ProjectedAttention):
    """Attention with 2D rotary position encoding on queries and keys (original:
    `sam2.modeling.sam.transformer.RoPEAttention` for the self-attention and `RoPEAttentionv2` for
    the cross-attention to memories; `key_value_dim` is the latter's `kv_in_dim`).

    The original forces PyTorch's math kernel on CPU (see `attend`): bit-exact with it but ~1.5x
    slower than the default (flash) kernel, which stays within ~1e-6 of it. `math_kernel_on_cpu`
    (off by default; `EdgeTamVideoModel.use_original_attention_kernels`) brings it back.
    """

    def __init__(self, config: EdgeTamVideoConfig, key_value_dim: int):
        hidden_size = config.memory_attention_hidden_size
        super().__init__(
            hidden_size,
            key_value_dim,
            hidden_size // config.memory_attention_downsample_rate,
            config.memory_attention_num_attention_heads,
            dropout=config.memory_attention_rope_dropout,
        )
        self.attn_implementation = config._attn_implementation or "sdpa"

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        query_rotation: tuple[torch.Tensor, torch.Tensor],
        key_rotation: tuple[torch.Tensor, torch.Tensor],
        num_spatial_memories: int = 1,
        num_object_pointer_tokens: int = 0,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """queries (batch, num_queries, hidden); keys / values (batch, num_keys, key_value_dim);
        rotations are (cos, sin) tables; see `rotate_memory_keys` for the key layout; key_mask
        (batch, num_keys) bool marks the keys that may be read (None: all).
        Self-attention is the case of one "memory" whose every token is rotated."""
        query = apply_axial_rotary(self.split_heads(self.q_proj(queries)), *query_rotation)
        key = self.split_heads(self.k_proj(keys))
        key = rotate_memory_keys(key, *key_rotation, num_spatial_memories, num_object_pointer_tokens)
        return self.attend_heads(query, key, self.split_heads(self.v_proj(values)), key_mask)


class MemoryAttentionFeedForward(nn.Module):
    """The layer's MLP with dropout after the activation (original: `linear1` / `linear2` of
    `MemoryAttentionLayer`)."""

    def __init__(self, config: EdgeTamVideoConfig):
        super().__init__()
        self.up_proj = nn.Linear(config.memory_attention_hidden_size, config.memory_attention_mlp_hidden_size)
        self.activation = ACT2FN[config.memory_attention_mlp_hidden_act]
        self.dropout = nn.Dropout(config.memory_attention_dropout)
        self.down_proj = nn.Linear(config.memory_attention_mlp_hidden_size, config.memory_attention_hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, hidden) -> the same. In eager inference one object's row at a time: the
        (batch, tokens, 2048) hidden layer is a tracked frame's largest tensor (96 MiB for 3
        objects) and set its peak memory; each row then computes as it would tracked alone."""
        if overwrites_activations(self) and hidden_states.shape[0] > 1:
            return torch.cat([self._feed_forward(row, in_place=True) for row in hidden_states.split(1)])
        return self._feed_forward(hidden_states, in_place=overwrites_activations(self))

    def _feed_forward(self, hidden_states: torch.Tensor, in_place: bool) -> torch.Tensor:
        hidden_states = self.up_proj(hidden_states)  # (batch, tokens, 2048)
        # In place in inference: no second tensor of that size.
        hidden_states = activate(self.activation, hidden_states, in_place)
        return self.down_proj(self.dropout(hidden_states))


class MemoryAttentionLayer(nn.Module):
    """Pre-norm RoPE self-attention, RoPE cross-attention to the memories, MLP (original:
    `sam2.modeling.memory_attention.MemoryAttentionLayer` as configured for EdgeTAM: no position
    added to queries, the memory position added to the cross-attention keys)."""

    def __init__(self, config: EdgeTamVideoConfig):
        super().__init__()
        hidden_size = config.memory_attention_hidden_size
        self.layer_norm1 = nn.LayerNorm(hidden_size)
        self.self_attn = RotaryAttention(config, key_value_dim=hidden_size)
        self.dropout1 = nn.Dropout(config.memory_attention_dropout)
        self.layer_norm2 = nn.LayerNorm(hidden_size)
        self.cross_attn_image = RotaryAttention(config, key_value_dim=config.memory_encoder_output_channels)
        self.dropout2 = nn.Dropout(config.memory_attention_dropout)
        self.layer_norm3 = nn.LayerNorm(hidden_size)
        self.mlp = MemoryAttentionFeedForward(config)
        self.dropout3 = nn.Dropout(config.memory_attention_dropout)

    def attend_to_frame(self, hidden_states: torch.Tensor, frame_rotation: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The self-attention step: (batch, num_frame_tokens, hidden) -> the same."""
        normed = self.layer_norm1(hidden_states)
        attended = self.self_attn(normed, normed, normed, frame_rotation, frame_rotation)
        return add_residual(self, self.dropout1(attended), hidden_states)

    def attend_to_memory(
        self,
        hidden_states: torch.Tensor,
        memory: torch.Tensor,
        memory_position: torch.Tensor,
        frame_rotation: tuple[torch.Tensor, torch.Tensor],
        memory_rotation: tuple[torch.Tensor, torch.Tensor],
        num_spatial_memories: int,
        num_object_pointer_tokens: int,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The cross-attention and MLP steps: hidden_states (batch, num_frame_tokens, hidden);
        memory / memory_position (batch, num_memory_tokens, memory_dim); memory_mask
        (batch, num_memory_tokens) bool, False for tokens of empty memory slots."""
        attended = self.cross_attn_image(
            self.layer_norm2(hidden_states),
            memory + memory_position,
            memory,
            frame_rotation,
            memory_rotation,
            num_spatial_memories,
            num_object_pointer_tokens,
            memory_mask,
        )
        hidden_states = add_residual(self, self.dropout2(attended), hidden_states)
        return add_residual(self, self.dropout3(self.mlp(self.layer_norm3(hidden_states))), hidden_states)


class EdgeTamMemoryAttention(nn.Module):
    """Conditions the current frame's image embedding on the memory bank (original:
    `sam2.modeling.memory_attention.MemoryAttention` with `pos_enc_at_input=True`).

    The frame tokens are rotary-encoded on the frame's own grid (64x64 for a 1024 input), the
    2D-latent memory tokens on the `memory_attention_rope_k_sizes` grid (16x16).
    """

    def __init__(self, config: EdgeTamVideoConfig):
        super().__init__()
        self.layers = nn.ModuleList(MemoryAttentionLayer(config) for _ in range(config.memory_attention_num_layers))
        self.layer_norm = nn.LayerNorm(config.memory_attention_hidden_size)
        head_dim = (
            config.memory_attention_hidden_size
            // config.memory_attention_downsample_rate
            // config.memory_attention_num_attention_heads
        )
        self.rotary_encoding = AxialRotaryEncoding(head_dim, config.memory_attention_rope_theta)
        # Stored as (width, height), as in the original's `k_sizes`.
        self.memory_grid_width, self.memory_grid_height = config.memory_attention_rope_k_sizes

    def forward(
        self,
        current_features: torch.Tensor,
        current_position: torch.Tensor,
        memory: torch.Tensor,
        memory_position: torch.Tensor,
        num_spatial_memories: int,
        num_object_pointer_tokens: int = 0,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            current_features: (batch, hidden, height, width) lowest-resolution image features of
                the current frame, one object per batch entry; or (1, hidden, height, width) for
                one frame shared by every object of the memory's batch.
            current_position: their sine position encoding, of the same shape.
            memory: (batch, num_memory_tokens, memory_dim) the memory tokens of
                `num_spatial_memories` frames (perceiver outputs, each 512 tokens), then
                `num_object_pointer_tokens` object-pointer tokens.
            memory_position: (batch, num_memory_tokens, memory_dim) their position encodings,
                temporal encodings included.
            memory_mask: (batch, num_memory_tokens) bool, False for the tokens of empty memory
                slots (fixed-size memory banks); None when every token is a memory.

        Returns:
            (batch, hidden, height, width): the memory-conditioned features.
        """
        _, hidden_size, height, width = current_features.shape
        batch_size = memory.shape[0]
        if current_features.shape[0] not in (1, batch_size):
            raise ValueError(
                f"current_features has {current_features.shape[0]} rows; expected 1 (shared) or {batch_size} (the memory's)"
            )
        hidden_states = current_features + 0.1 * current_position
        hidden_states = hidden_states.flatten(2).transpose(1, 2)  # (batch or 1, height * width, hidden)
        frame_rotation = self.rotary_encoding(height, width, current_features.device)
        memory_rotation = self.rotary_encoding(self.memory_grid_height, self.memory_grid_width, memory.device)
        for layer in self.layers:
            hidden_states = layer.attend_to_frame(hidden_states, frame_rotation)
            # Until the first cross-attention the tokens are the frame's alone: a shared frame is
            # self-attended once for all objects, then each object reads its own memory.
            hidden_states = hidden_states.expand(batch_size, -1, -1)
            hidden_states = layer.attend_to_memory(
                hidden_states,
                memory,
                memory_position,
                frame_rotation,
                memory_rotation,
                num_spatial_memories,
                num_object_pointer_tokens,
                memory_mask,
            )
        hidden_states = self.layer_norm(hidden_states)
        return hidden_states.transpose(1, 2).reshape(batch_size, hidden_size, height, width)
