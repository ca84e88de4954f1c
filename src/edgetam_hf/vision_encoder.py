"""The image encoder: a RepViT-M1 trunk and an FPN neck with sine position encodings.

Ports `sam2.modeling.backbones.image_encoder.ImageEncoder(TimmBackbone, FpnNeck)` as configured in
EdgeTAM's configs/edgetam.yaml. The trunk (`repvit.py`) is written there rather than built by timm,
but every module keeps the name timm's `repvit_m1` (with `features_only=True`) gives it, so a timm
state dict, transformers' `EdgeTamVisionModel` checkpoint and the original checkpoint all load one
to one.

State-dict layout (transformers' `EdgeTamVisionModel`):
    backbone.timm_model.stem.*, backbone.timm_model.stages_{0..3}.*   RepViT-M1, timm names
    neck.convs.{0..3}.weight / bias                                   lateral 1x1 convs, low to high resolution
"""

import torch
import torch.nn.functional as F
from torch import nn

from .configuration import EdgeTamVisionConfig
from .position_encoding import SinePositionEncoding
from .repvit import FoldedForInference, RepVitTrunk

# ----------------------------------------------------------------------------- trunk


class EdgeTamVisionBackbone(nn.Module):
    """Holds the trunk as `timm_model`, the one extra name level of transformers' `TimmWrapperModel`,
    so that the state-dict keys read `backbone.timm_model.*`."""

    def __init__(self, config: EdgeTamVisionConfig):
        super().__init__()
        self.timm_model = RepVitTrunk(config)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.timm_model(pixel_values)


# ----------------------------------------------------------------------------- FPN neck


class EdgeTamFpnNeck(nn.Module):
    """Lateral convs to `fpn_hidden_size` with a nearest-neighbour top-down path on some levels
    (original: `sam2.modeling.backbones.image_encoder.FpnNeck`, fuse_type "sum", no output convs).

    Levels are numbered like the trunk stages, 0 = highest resolution. `convs` is ordered like
    `backbone_channel_list`, i.e. from the lowest resolution: `convs[k]` reads level
    `num_levels - 1 - k`. Only levels in `fpn_top_down_levels` add the upsampled output of the level
    below them; in EdgeTAM ([2, 3]) the two highest-resolution levels are lateral features only.
    """

    def __init__(self, config: EdgeTamVisionConfig):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(
                in_channels,
                config.fpn_hidden_size,
                kernel_size=config.fpn_kernel_size,
                stride=config.fpn_stride,
                padding=config.fpn_padding,
            )
            for in_channels in config.backbone_channel_list
        )
        self.top_down_levels = frozenset(config.fpn_top_down_levels)
        self.num_feature_levels = config.num_feature_levels
        self.position_encoding = SinePositionEncoding(config.fpn_hidden_size)

    def forward(
        self, trunk_features: tuple[torch.Tensor, ...]
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """Trunk maps (high to low resolution) -> the `num_feature_levels` highest-resolution FPN
        maps and their position encodings, both high to low resolution."""
        fpn_features = tuple(self._top_down(trunk_features)[: self.num_feature_levels])
        position_encodings = tuple(self._position_encoding_like(features) for features in fpn_features)
        return fpn_features, position_encodings

    def lowest_kept_level(self, trunk_features: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Trunk maps -> the lowest-resolution kept FPN map and its position encoding, without
        computing the higher-resolution levels (the image embedding's level)."""
        lowest_kept = self.num_feature_levels - 1
        features = self._top_down(trunk_features, down_to_level=lowest_kept)[lowest_kept]
        return features, self._position_encoding_like(features)

    def lateral_conv(self, level: int) -> nn.Conv2d | None:
        """The conv that alone makes FPN level `level`, or None when the level also adds the
        top-down path."""
        if level in self.top_down_levels:
            return None
        return self.convs[len(self.convs) - 1 - level]

    def _top_down(self, trunk_features: tuple[torch.Tensor, ...], down_to_level: int = 0) -> list[torch.Tensor | None]:
        """FPN maps from the lowest resolution up to level `down_to_level` (None above it)."""
        num_levels = len(self.convs)
        if len(trunk_features) != num_levels:
            raise ValueError(f"expected {num_levels} trunk feature maps, got {len(trunk_features)}")
        fpn_features = [None] * num_levels
        coarser_output = None
        for level in reversed(range(down_to_level, num_levels)):
            output = self.convs[num_levels - 1 - level](trunk_features[level])
            if level in self.top_down_levels and coarser_output is not None:
                # Nearest-neighbour upsampling only copies values, so it is exact in any dtype (the
                # original's detour through float32 changes nothing).
                output = output + F.interpolate(coarser_output, scale_factor=2.0, mode="nearest")
            fpn_features[level] = coarser_output = output
        return fpn_features

    def _position_encoding_like(self, features: torch.Tensor) -> torch.Tensor:
        batch_size, _, height, width = features.shape
        encoding = self.position_encoding(height, width, features.device, features.dtype)  # (C, H, W)
        return encoding.unsqueeze(0).expand(batch_size, -1, -1, -1)


# ----------------------------------------------------------------------------- encoder


class EdgeTamVisionEncoder(nn.Module):
    """RepViT-M1 trunk + FPN neck (original: `ImageEncoder(TimmBackbone, FpnNeck)` with `scalp=1`;
    transformers: `EdgeTamVisionModel`).

    The original's `scalp=1` drops the lowest-resolution FPN level after the neck; here the neck
    keeps the `num_feature_levels` highest-resolution levels, which is the same for 4 trunk stages
    and `num_feature_levels=3`.
    """

    def __init__(self, config: EdgeTamVisionConfig):
        super().__init__()
        self.config = config
        self.backbone = EdgeTamVisionBackbone(config)
        self.neck = EdgeTamFpnNeck(config)

    def forward(
        self, pixel_values: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """(batch, 3, 1024, 1024) normalised pixels -> `(fpn_hidden_states, fpn_position_encoding)`.

        Each is a tuple of `num_feature_levels` tensors from high to low resolution; for the
        released model (batch, 256, 256, 256), (batch, 256, 128, 128), (batch, 256, 64, 64) (the
        original's `backbone_fpn` / `vision_pos_enc`). The position encodings are expanded views of
        one cached (256, H, W) tensor: do not write into them.
        """
        return self.neck(self.backbone(pixel_values))

    def fuse(self) -> "EdgeTamVisionEncoder":
        """Re-parameterise the trunk for inference in place (see `RepVitTrunk.fuse`); returns self."""
        self.backbone.timm_model.fuse()
        return self

    def fold_for_inference(self, enabled: bool | None = True) -> "EdgeTamVisionEncoder":
        """Whether the trunk's conv-norms and token mixers run as folded convs in inference,
        keeping the weights and their names (see `FoldedForInference`; None, the default: in
        reduced precision only, so float32 keeps the 1e-4 parity with the original on every CPU).
        Off, the trunk computes branch by branch as the original does. Returns self."""
        for module in self.modules():
            if isinstance(module, FoldedForInference):
                module.fold_for_inference = enabled
                module.weights_changed()
        return self
