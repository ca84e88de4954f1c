"""Memory encoder: fuses a frame's image embedding with its predicted mask into a 64-channel memory."""

import math
from typing import NamedTuple

import torch
from torch import nn
from transformers.activations import ACT2FN

from .configuration import EdgeTamVideoConfig
from .layers import LayerNorm2d, activate, add_residual, channels_last_in_inference, overwrites_activations
from .position_encoding import SinePositionEncoding


class MemoryEncoderOutput(NamedTuple):
    """`memory_features`: (batch, 64, height, width) memory map of the frame (height = width = 64
    for a 1024 input); `memory_position`: its (batch, 64, height, width) sine position encoding,
    a broadcast view of one cached map (not to be modified in place)."""

    memory_features: torch.Tensor
    memory_position: torch.Tensor


class MaskDownSamplerLayer(nn.Module):
    """One strided conv -> channel LayerNorm -> activation step of the original `MaskDownSampler`."""

    def __init__(self, config: EdgeTamVideoConfig, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=config.mask_downsampler_kernel_size,
            stride=config.mask_downsampler_stride,
            padding=config.mask_downsampler_padding,
        )
        self.layer_norm = LayerNorm2d(out_channels, eps=1e-6)
        self.activation = ACT2FN[config.mask_downsampler_hidden_act]

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        return activate(self.activation, self.layer_norm(self.conv(masks)), in_place=overwrites_activations(self))


class MaskDownSampler(nn.Module):
    """Brings a full-resolution mask down to the image-embedding grid (original:
    `sam2.modeling.memory_encoder.MaskDownSampler`).

    Each step divides height and width by `stride` and multiplies the channels by `stride ** 2`
    (1 -> 4 -> 16 -> 64 -> 256 for stride 2, total stride 16); a 1x1 conv then maps to
    `mask_downsampler_embed_dim` channels.
    """

    def __init__(self, config: EdgeTamVideoConfig):
        super().__init__()
        stride = config.mask_downsampler_stride
        num_layers = int(math.log2(config.mask_downsampler_total_stride) // math.log2(stride))
        if stride**num_layers != config.mask_downsampler_total_stride:
            raise ValueError(
                f"mask_downsampler_total_stride ({config.mask_downsampler_total_stride}) must be a power "
                f"of mask_downsampler_stride ({stride})"
            )
        channels = [stride ** (2 * index) for index in range(num_layers + 1)]
        self.layers = nn.ModuleList(
            MaskDownSamplerLayer(config, in_channels, out_channels)
            for in_channels, out_channels in zip(channels[:-1], channels[1:])
        )
        self.final_conv = nn.Conv2d(channels[-1], config.mask_downsampler_embed_dim, kernel_size=1)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            # Per layer: a one-channel map has no distinct channels-last layout, so the first
            # conv's output comes out channels-first.
            masks = layer(channels_last_in_inference(self, masks))
        return self.final_conv(masks)


class MemoryFuserBlock(nn.Module):
    """ConvNeXt block: depthwise conv, channel LayerNorm, pointwise MLP, layer scale, residual
    (original: `sam2.modeling.memory_encoder.CXBlock`; its drop path is 0 in EdgeTAM)."""

    def __init__(self, config: EdgeTamVideoConfig):
        super().__init__()
        channels = config.memory_fuser_embed_dim
        self.depthwise_conv = nn.Conv2d(
            channels,
            channels,
            kernel_size=config.memory_fuser_kernel_size,
            padding=config.memory_fuser_padding,
            groups=channels,
        )
        self.layer_norm = LayerNorm2d(channels, eps=1e-6)
        # 1x1 convs written as linear layers on a channels-last map, as in the original.
        self.pointwise_conv1 = nn.Linear(channels, config.memory_fuser_intermediate_dim)
        self.activation = ACT2FN[config.memory_fuser_hidden_act]
        self.pointwise_conv2 = nn.Linear(config.memory_fuser_intermediate_dim, channels)
        self.scale = nn.Parameter(config.memory_fuser_layer_scale_init_value * torch.ones(channels))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = hidden_states
        in_place = overwrites_activations(self)
        hidden_states = self.layer_norm(self.depthwise_conv(hidden_states))
        hidden_states = hidden_states.permute(0, 2, 3, 1)  # (batch, height, width, channels)
        hidden_states = activate(self.activation, self.pointwise_conv1(hidden_states), in_place)
        hidden_states = self.pointwise_conv2(hidden_states)
        hidden_states = hidden_states.mul_(self.scale) if in_place else self.scale * hidden_states
        return residual + hidden_states.permute(0, 3, 1, 2)


class MemoryFuser(nn.Module):
    """A stack of `MemoryFuserBlock`s (original: `sam2.modeling.memory_encoder.Fuser` without its
    input projection, which EdgeTAM leaves as the identity)."""

    def __init__(self, config: EdgeTamVideoConfig):
        super().__init__()
        self.layers = nn.ModuleList(MemoryFuserBlock(config) for _ in range(config.memory_fuser_num_layers))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return hidden_states


class EdgeTamMemoryEncoder(nn.Module):
    """Encodes a frame and its predicted mask into a memory (original:
    `sam2.modeling.memory_encoder.MemoryEncoder`, together with the mask preparation of
    `SAM2Base._encode_new_memory`).

    The mask preparation (sigmoid or binarisation, then `* sigmoid_scale_for_mem_enc +
    sigmoid_bias_for_mem_enc`) lives here rather than in the video model: it is part of what the
    encoder was trained to read, and keeping it here lets the model hand over raw mask logits.
    The occlusion embedding and the spatial perceiver that follow in the original are the
    model's and `EdgeTamPerceiverResampler`'s.
    """

    def __init__(self, config: EdgeTamVideoConfig):
        super().__init__()
        hidden_size = config.memory_encoder_hidden_size
        self.mask_sigmoid_scale = config.sigmoid_scale_for_mem_enc
        self.mask_sigmoid_bias = config.sigmoid_bias_for_mem_enc
        self.mask_downsampler = MaskDownSampler(config)
        self.feature_projection = nn.Conv2d(hidden_size, hidden_size, kernel_size=1)
        self.memory_fuser = MemoryFuser(config)
        self.projection = nn.Conv2d(hidden_size, config.memory_encoder_output_channels, kernel_size=1)
        self.position_encoding = SinePositionEncoding(config.memory_encoder_output_channels)

    def prepare_mask(self, mask_logits: torch.Tensor, binarize: bool = False) -> torch.Tensor:
        """Mask logits -> the encoder's input: in [bias, bias + scale] = [-10, 10] for EdgeTAM.

        `binarize=True` thresholds the logits at 0 instead of taking the sigmoid; the original does
        so at inference for masks predicted from clicks (`binarize_mask_from_pts_for_mem_enc`).
        """
        if binarize:
            mask = (mask_logits > 0).to(mask_logits.dtype)
        else:
            mask = torch.sigmoid(mask_logits)
        return mask * self.mask_sigmoid_scale + self.mask_sigmoid_bias

    def forward(
        self,
        vision_features: torch.Tensor,
        mask_logits: torch.Tensor,
        binarize_mask: bool = False,
    ) -> MemoryEncoderOutput:
        """
        Args:
            vision_features: (batch or 1, 256, height, width) lowest-resolution image features of
                the frame, without the no-memory embedding (64x64 for a 1024 input); one row is
                shared by every mask.
            mask_logits: (batch, 1, 16 * height, 16 * width) high-resolution mask logits, one
                object per batch entry.
            binarize_mask: threshold the mask instead of taking its sigmoid (see `prepare_mask`).
        """
        # One frame's row broadcasts to its masks: the projection reads only the frame, so it runs once.
        projected_features = self.feature_projection(vision_features)  # (batch or 1, 256, H, W)
        # Not while torch.export / compile trace: the branch on the number of masks would fix the
        # graph's object axis to the traced size.
        one_at_a_time = mask_logits.device.type == "cpu" and not torch.compiler.is_compiling()
        if one_at_a_time and mask_logits.shape[0] > 1:
            # One mask at a time on CPU, the same values (each mask's computation is its own):
            # a batch's intermediates (50 MiB for 3 masks in the fuser's MLP) are larger than what
            # the C allocator keeps for reuse, so every call faulted them in from the kernel afresh
            # (3 masks at once: ~12x the page faults and ~1.2x the CPU time of one at a time).
            rows = projected_features.expand(mask_logits.shape[0], -1, -1, -1).split(1)
            memory_features = torch.cat(
                [self._fuse(row, mask, binarize_mask) for row, mask in zip(rows, mask_logits.split(1))]
            )
        else:
            memory_features = self._fuse(projected_features, mask_logits, binarize_mask)
        batch_size, _, height, width = memory_features.shape
        position = self.position_encoding(height, width, memory_features.device, memory_features.dtype)
        return MemoryEncoderOutput(memory_features, position.expand(batch_size, -1, -1, -1))

    def _fuse(self, projected_features: torch.Tensor, mask_logits: torch.Tensor, binarize_mask: bool) -> torch.Tensor:
        """Projected frame features (batch or 1, 256, H, W) + masks (batch, 1, 16 H, 16 W) -> the
        (batch, 64, H, W) memory map."""
        mask_embeddings = self.mask_downsampler(self.prepare_mask(mask_logits, binarize_mask))
        hidden_states = add_residual(self, mask_embeddings, projected_features)  # (batch, 256, H, W)
        return self.projection(self.memory_fuser(hidden_states))
