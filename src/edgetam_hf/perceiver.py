"""The 2D spatial perceiver: compresses a frame's 64x64 memory map into 512 memory tokens."""

import math
from typing import NamedTuple

import torch
from torch import nn

from .configuration import EdgeTamVideoConfig
from .layers import ProjectedAttention
from .position_encoding import SinePositionEncoding


class PerceiverOutput(NamedTuple):
    """`memory_tokens`: (batch, num_latents + num_latents_2d, hidden) = (batch, 512, 64) for
    EdgeTAM, the global latents first, then the 2D latents in row-major window order (the
    memory attention rotary-encodes the last num_latents_2d tokens of each memory frame);
    `memory_position`: their (batch, 512, 64) position encoding, zero for the global latents and
    the sine encoding of the window grid for the 2D latents."""

    memory_tokens: torch.Tensor
    memory_position: torch.Tensor


class PerceiverFeedForward(nn.Module):
    """Pre-norm GELU MLP without biases (original: `sam2.modeling.perceiver.FeedForward`)."""

    def __init__(self, config: EdgeTamVideoConfig):
        super().__init__()
        hidden_size = config.perceiver_resampler_hidden_size
        self.layer_norm = nn.LayerNorm(hidden_size)
        self.up_proj = nn.Linear(hidden_size, config.perceiver_resampler_mlp_intermediate_size, bias=False)
        self.activation = nn.GELU()
        self.down_proj = nn.Linear(config.perceiver_resampler_mlp_intermediate_size, hidden_size, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.activation(self.up_proj(self.layer_norm(hidden_states))))


class PerceiverAttention(ProjectedAttention):
    """Multi-head attention without biases, on already normalised inputs (original:
    `sam2.modeling.perceiver.PerceiverAttention` / `Attention`, whose LayerNorms sit in
    `PerceiverLayer` here, and whose fused `to_kv` is split into `k_proj` / `v_proj`)."""

    def __init__(self, config: EdgeTamVideoConfig):
        hidden_size = config.perceiver_resampler_hidden_size
        num_heads = config.perceiver_resampler_num_attention_heads
        super().__init__(
            hidden_size,
            hidden_size,
            config.perceiver_resampler_attention_head_dim * num_heads,
            num_heads,
            bias=False,
            dropout=config.perceiver_resampler_attention_dropout,
        )
        self.attn_implementation = config._attn_implementation or "sdpa"

    def forward(
        self,
        queries: torch.Tensor,
        keys_values: torch.Tensor,
        key_value_position: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """queries (batch, num_queries, hidden); keys_values and the optional key_value_position
        (batch, num_keys, hidden). The position is added to the projected keys and values both."""
        query = self.split_heads(self.q_proj(queries))
        key = self.split_heads(self.k_proj(keys_values))
        value = self.split_heads(self.v_proj(keys_values))
        if key_value_position is not None:
            position = self.split_heads(key_value_position)
            key, value = key + position, value + position
        return self.attend_heads(query, key, value)


class PerceiverLayer(nn.Module):
    """Latents cross-attend to the memory, then attend to each other, each step followed by an
    MLP (original: `sam2.modeling.perceiver.PerceiverEncoderLayer` with `use_self_attn=True`)."""

    def __init__(self, config: EdgeTamVideoConfig):
        super().__init__()
        hidden_size = config.perceiver_resampler_hidden_size
        self.layer_norm_latents = nn.LayerNorm(hidden_size)
        self.layer_norm_input = nn.LayerNorm(hidden_size)
        self.cross_attention = PerceiverAttention(config)
        self.dropout = nn.Dropout(config.perceiver_resampler_hidden_dropout)
        self.mlp = PerceiverFeedForward(config)
        self.layer_norm_self = nn.LayerNorm(hidden_size)
        self.self_attention = PerceiverAttention(config)
        self.self_mlp = PerceiverFeedForward(config)

    def forward(
        self,
        latents: torch.Tensor,
        memory_tokens: torch.Tensor,
        memory_position: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """latents (batch, num_latents, hidden); memory_tokens / memory_position (batch, num_tokens, hidden)."""
        attended = self.cross_attention(
            self.layer_norm_latents(latents), self.layer_norm_input(memory_tokens), memory_position
        )
        # The original drops out the residual sum, not the attention output alone.
        latents = self.dropout(attended + latents)
        latents = self.mlp(latents) + latents
        normed_latents = self.layer_norm_self(latents)
        latents = self.self_attention(normed_latents, normed_latents) + latents
        return self.self_mlp(latents) + latents


class EdgeTamPerceiverResampler(nn.Module):
    """EdgeTAM's 2D spatial perceiver (original: `sam2.modeling.perceiver.PerceiverResampler`).

    Global latents (`latents_1d`) cross-attend to the whole memory map with its position encoding
    added to keys and values; each 2D latent (`latents_2d`, one per window of a
    sqrt(num_latents_2d)-square grid) cross-attends only to the tokens of its window, without
    position. Both sets share the layers and the final LayerNorm.

    Unlike the original `forward_2d`, which can only run one object at a time (its
    `expand(B, ...).view(...)` fails for B > 1), every object of the batch is resampled at once,
    with the result of running the original once per object.
    """

    def __init__(self, config: EdgeTamVideoConfig):
        super().__init__()
        hidden_size = config.perceiver_resampler_hidden_size
        num_latents = max(config.perceiver_resampler_num_latents, 0)
        num_latents_2d = max(config.perceiver_resampler_num_latents_2d, 0)
        self.num_windows_per_side = math.isqrt(num_latents_2d)
        if self.num_windows_per_side**2 != num_latents_2d:
            raise ValueError(f"perceiver_resampler_num_latents_2d must be a square, got {num_latents_2d}")
        if num_latents + num_latents_2d == 0:
            raise ValueError("the perceiver needs global latents, 2D latents or both")
        # As in the original and transformers, a set of latents that is not used has no parameter.
        self.latents_1d = nn.Parameter(torch.randn(num_latents, hidden_size)) if num_latents else None
        self.latents_2d = nn.Parameter(torch.randn(num_latents_2d, hidden_size)) if num_latents_2d else None
        self.layers = nn.ModuleList(PerceiverLayer(config) for _ in range(config.perceiver_resampler_num_layers))
        self.layer_norm = nn.LayerNorm(hidden_size)
        self.position_encoding = SinePositionEncoding(hidden_size)

    def forward(self, memory_features: torch.Tensor, memory_position: torch.Tensor) -> PerceiverOutput:
        """
        Args:
            memory_features: (batch, hidden, height, width) memory map from the memory encoder,
                one object per batch entry; height and width must be multiples of
                sqrt(num_latents_2d) (64 = 16 windows of 4 for EdgeTAM).
            memory_position: (batch, hidden, height, width) its position encoding.
        """
        outputs = []
        if self.latents_1d is not None:
            outputs.append(self._resample_globally(memory_features, memory_position))
        if self.latents_2d is not None:
            outputs.append(self._resample_windows(memory_features))
        tokens, positions = zip(*outputs)
        return PerceiverOutput(torch.cat(tokens, dim=1), torch.cat(positions, dim=1))

    def _resample_globally(
        self, memory_features: torch.Tensor, memory_position: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The original's `forward_1d`: -> (batch, num_latents, hidden) tokens and zero position."""
        batch_size = memory_features.shape[0]
        memory_tokens = memory_features.flatten(2).transpose(1, 2)  # (batch, height * width, hidden)
        position_tokens = memory_position.flatten(2).transpose(1, 2)
        latents = self.latents_1d.expand(batch_size, -1, -1)
        for layer in self.layers:
            latents = layer(latents, memory_tokens, position_tokens)
        # The global latents carry no position, but the memory attention expects one per token.
        return self.layer_norm(latents), torch.zeros_like(latents)

    def _resample_windows(self, memory_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The original's `forward_2d`: -> (batch, num_latents_2d, hidden) tokens and their position."""
        batch_size, hidden_size, height, width = memory_features.shape
        side = self.num_windows_per_side
        if height % side or width % side:
            raise ValueError(
                f"the memory map ({height}x{width}) must split into {side}x{side} equal windows: this model's "
                "image_size is not one it can take (edgetam_hf.input_size.supported_image_sizes lists them)"
            )
        window_height, window_width = height // side, width // side
        # (batch, hidden, height, width) -> (batch * side * side, window_height * window_width, hidden),
        # windows in row-major order within each object, objects one after the other.
        windows = memory_features.permute(0, 2, 3, 1).reshape(batch_size, side, window_height, side, window_width, -1)
        windows = windows.transpose(2, 3).reshape(batch_size * side * side, window_height * window_width, -1)
        # One latent per window: each window is a batch entry of one query.
        latents = self.latents_2d.expand(batch_size, -1, -1).reshape(batch_size * side * side, 1, hidden_size)
        for layer in self.layers:
            latents = layer(latents, windows)
        latents = self.layer_norm(latents.view(batch_size, side * side, hidden_size))
        position = self.position_encoding(side, side, memory_features.device, memory_features.dtype)
        position = position.flatten(1).transpose(0, 1).expand(batch_size, -1, -1)  # (batch, side * side, hidden)
        return latents, position
