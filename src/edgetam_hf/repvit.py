"""The RepViT-M1 trunk of the image encoder (timm's `repvit_m1` with `features_only=True`).

Written here rather than built by timm, but every module keeps the name timm gives it, so a timm
state dict, transformers' `EdgeTamVisionModel` checkpoint and the original checkpoint all load one
to one (under `backbone.timm_model.` in the image encoder).
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN

from .configuration import EdgeTamVisionConfig
from .layers import (
    ChangeAwareModule,
    activate,
    add_residual,
    batch_norm,
    channels_last_in_inference,
    overwrites_activations,
    plain_eager,
    pointwise_conv,
)



class FoldedForInference(ChangeAwareModule):
    """A module that `fuse()`s into one conv and, in inference (eval mode, gradients off), runs
    that conv, folded from its weights on first use and kept, instead of its branches and
    BatchNorms (timm's `fuse()` without renaming any weight: checkpoints load and save as they
    are, and training runs the branches).

    By default on in reduced precision only (`EdgeTamVisionEncoder.fold_for_inference(True)` turns
    it on in float32 too, `False` off everywhere). The folded trunk takes ~0.7x the time in float32
    and is as accurate as the branch-by-branch trunk (both ~1e-5 of the largest feature from a
    float64 run, on the fixture's random weights), but it rounds differently: on the fixture the
    worst video object score moves from 1.9e-5 to 7.3e-5 on AVX-512 kernels and to 1.2e-4 on AVX2
    kernels, past the 1e-4 parity with the original that float32 promises. Most of the change
    enters at the stem, whose rounding every later layer amplifies.
    The kept conv is dropped whenever the weights may change (see `ChangeAwareModule`); after
    editing them in place, call `weights_changed()`.
    """

    fold_for_inference: bool | None = None  # None: in reduced precision only
    _folded: nn.Conv2d | None = None

    def fuse(self) -> nn.Conv2d:
        raise NotImplementedError

    def weights_changed(self) -> None:
        self._folded = None

    def _use_folded(self, dtype: torch.dtype) -> bool:
        # Not while torch.export / torch.compile trace: building the kept conv inside a trace fails,
        # and an export then carries the original's branches, as its parity tests expect.
        inference = not self.training and not torch.is_grad_enabled() and not torch.compiler.is_compiling()
        enabled = dtype != torch.float32 if self.fold_for_inference is None else self.fold_for_inference
        return enabled and inference

    def _folded_conv(self) -> nn.Conv2d:
        if self._folded is None:
            # Kept out of the module tree: not a submodule, not in the state dict.
            self.__dict__["_folded"] = self._fold_for_inference()
        return self._folded

    def _fold_for_inference(self) -> nn.Conv2d:
        return self.fuse()


class RepVitConvNorm(FoldedForInference):
    """Bias-free convolution followed by BatchNorm (timm: `repvit.ConvNorm`); `fuse()` folds the two.

    Padding is `(kernel_size - 1) // 2`, which is what timm passes for every RepViT conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        bn_weight_init: float = 1.0,
    ):
        super().__init__()
        padding = (kernel_size - 1) // 2
        self.c = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self._use_folded(hidden_states.dtype):
            return self._folded_conv()(hidden_states)
        return batch_norm(self.bn, self._convolve(hidden_states), in_place=overwrites_activations(self))

    def _convolve(self, hidden_states: torch.Tensor) -> torch.Tensor:
        conv = self.c
        pointwise = conv.kernel_size == conv.stride == (1, 1)
        if pointwise and conv.groups == 1:
            return pointwise_conv(hidden_states, conv.weight)
        depthwise = conv.groups == conv.in_channels == conv.out_channels
        if pointwise and depthwise and plain_eager():
            # A depthwise 1x1 conv (the token mixer's second branch) scales each channel: one
            # product per output, so the same values as the conv, at a fraction of its time.
            return hidden_states * conv.weight.view(1, -1, 1, 1)
        return conv(hidden_states)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        """One conv with a bias that computes what this module computes in eval mode (folded in
        float32 whatever the weights' dtype, then cast to it)."""
        conv, bn = self.c, self.float_copy_of_bn()
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (out_channels,)
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=True,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        fused.weight.copy_(conv.weight.float() * scale[:, None, None, None])
        # Same rounding as timm's fold, so fused weights equal those of timm's `RepVit.fuse()`.
        fused.bias.copy_(bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps))
        return fused

    def float_copy_of_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm's statistics and affine parameters in float32 (itself when already so)."""
        if self.bn.weight.dtype == torch.float32:
            return self.bn
        bn = nn.BatchNorm2d(self.bn.num_features, eps=self.bn.eps, device=self.bn.weight.device)
        bn.load_state_dict({key: value.float() for key, value in self.bn.state_dict().items()})
        return bn


class RepVitTokenMixer(FoldedForInference):
    """Depthwise k x k conv + depthwise 1x1 conv + identity, summed (timm: `repvit.RepVggDw`, the
    `legacy=True` layout of RepViT-M1, where both branches carry their own BatchNorm).

    The three branches are linear in the input, so `fuse()` merges them into one depthwise conv.
    """

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.conv = RepVitConvNorm(channels, channels, kernel_size, groups=channels)
        self.conv1 = RepVitConvNorm(channels, channels, 1, groups=channels)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self._use_folded(hidden_states.dtype):
            folded = self._folded_conv()(hidden_states)
            return add_residual(self, folded, hidden_states) if self._identity_kept_apart() else folded
        mixed = self.conv(hidden_states)
        if overwrites_activations(self):
            return mixed.add_(self.conv1(hidden_states)).add_(hidden_states)
        return mixed + self.conv1(hidden_states) + hidden_states

    @torch.no_grad()
    def fuse(self, include_identity: bool = True) -> nn.Conv2d:
        """One depthwise k x k conv equal to the sum of the three branches (summed in float32),
        or of the two conv branches without the identity."""
        fused = self.conv.fuse().float()
        pointwise = self.conv1.fuse().float()
        # A 1x1 kernel zero-padded to k x k (and a centred 1 for the identity) acts the same under
        # the k x k conv's padding of (k - 1) // 2.
        border = fused.kernel_size[0] // 2
        fused.weight.add_(F.pad(pointwise.weight, [border] * 4))  # (channels, 1, k, k)
        if include_identity:
            fused.weight[:, :, border, border] += 1.0
        fused.bias.add_(pointwise.bias)
        return fused.to(self.conv.c.weight.dtype)

    def _identity_kept_apart(self) -> bool:
        """In reduced precision the identity is added to the output instead of merged into the
        kernel: a centre weight 1 + w in bfloat16 (8-bit mantissa) keeps w only to ~0.004, which
        on the fixture took tracked masks from IoU 0.96 to 0.92 against float32 (worst 0.27)."""
        return self.conv.c.weight.dtype != torch.float32

    def _fold_for_inference(self) -> nn.Conv2d:
        return self.fuse(include_identity=not self._identity_kept_apart())


def _squeeze_excite_channels(channels: int) -> int:
    """RepViT's squeeze-excite keeps a quarter of the channels, rounded to the nearest multiple of
    8 and at least 8 (timm's `make_divisible(channels * 0.25, 8, round_limit=0)`)."""
    return max(8, int(channels * 0.25 + 4) // 8 * 8)


class RepVitSqueezeExcite(nn.Module):
    """Channel gating from globally pooled features (timm: `layers.SEModule` as RepViT builds it)."""

    def __init__(self, channels: int):
        super().__init__()
        reduced_channels = _squeeze_excite_channels(channels)
        self.fc1 = nn.Conv2d(channels, reduced_channels, kernel_size=1)
        self.fc2 = nn.Conv2d(reduced_channels, channels, kernel_size=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """In eager inference it scales `hidden_states` in place: its only caller, the block,
        passes the token mixer's output, which nothing else reads."""
        pooled = hidden_states.mean((2, 3), keepdim=True)  # (batch, channels, 1, 1)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))
        return hidden_states.mul_(gate) if overwrites_activations(self) else hidden_states * gate


class RepVitMlp(nn.Module):
    """1x1 expand, activation, 1x1 project (timm: `repvit.RepVitMlp`)."""

    def __init__(self, channels: int, hidden_channels: int, hidden_act: str):
        super().__init__()
        self.conv1 = RepVitConvNorm(channels, hidden_channels)
        self.act = ACT2FN[hidden_act]
        # The projection's BatchNorm starts at zero so that a fresh block is the identity (as timm).
        self.conv2 = RepVitConvNorm(hidden_channels, channels, bn_weight_init=0.0)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.conv2(activate(self.act, self.conv1(hidden_states), in_place=overwrites_activations(self)))


class RepVitBlock(nn.Module):
    """Token mixer, optional squeeze-excite, then a residual channel MLP (timm: `repvit.RepViTBlock`)."""

    def __init__(self, channels: int, mlp_ratio: float, kernel_size: int, use_se: bool, hidden_act: str):
        super().__init__()
        self.token_mixer = RepVitTokenMixer(channels, kernel_size)
        self.se = RepVitSqueezeExcite(channels) if use_se else nn.Identity()
        self.channel_mixer = RepVitMlp(channels, int(channels * mlp_ratio), hidden_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.se(self.token_mixer(hidden_states))
        return add_residual(self, self.channel_mixer(hidden_states), hidden_states)


class RepVitStem(nn.Module):
    """Two stride-2 3x3 conv-norms with an activation between them: a 4x downsampling (timm: `RepVitStem`)."""

    def __init__(self, in_channels: int, out_channels: int, hidden_act: str):
        super().__init__()
        self.conv1 = RepVitConvNorm(in_channels, out_channels // 2, 3, stride=2)
        self.act1 = ACT2FN[hidden_act]
        self.conv2 = RepVitConvNorm(out_channels // 2, out_channels, 3, stride=2)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.conv2(activate(self.act1, self.conv1(pixel_values), in_place=overwrites_activations(self)))


class RepVitDownsample(nn.Module):
    """A block without squeeze-excite, a stride-2 depthwise conv, a 1x1 conv to the new width and a
    residual MLP (timm: `repvit.RepVitDownsample`)."""

    def __init__(self, in_channels: int, out_channels: int, mlp_ratio: float, kernel_size: int, hidden_act: str):
        super().__init__()
        self.pre_block = RepVitBlock(in_channels, mlp_ratio, kernel_size, use_se=False, hidden_act=hidden_act)
        self.spatial_downsample = RepVitConvNorm(in_channels, in_channels, kernel_size, stride=2, groups=in_channels)
        self.channel_downsample = RepVitConvNorm(in_channels, out_channels)
        self.ffn = RepVitMlp(out_channels, int(out_channels * mlp_ratio), hidden_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.channel_downsample(self.spatial_downsample(self.pre_block(hidden_states)))
        return add_residual(self, self.ffn(hidden_states), hidden_states)


class RepVitStage(nn.Module):
    """An optional downsampling, then `depth` blocks whose squeeze-excite is on for the first and
    every other one after it (timm: `repvit.RepVitStage`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int,
        mlp_ratio: float,
        kernel_size: int,
        hidden_act: str,
        downsample: bool,
    ):
        super().__init__()
        if downsample:
            self.downsample = RepVitDownsample(in_channels, out_channels, mlp_ratio, kernel_size, hidden_act)
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(
            *(
                RepVitBlock(out_channels, mlp_ratio, kernel_size, use_se=index % 2 == 0, hidden_act=hidden_act)
                for index in range(depth)
            )
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(hidden_states))


def _fuse_in_place(module: nn.Module) -> None:
    """Replace every conv-norm and token mixer under `module` by its fused conv."""
    for name, child in module.named_children():
        if isinstance(child, (RepVitConvNorm, RepVitTokenMixer)):
            setattr(module, name, child.fuse())
        else:
            _fuse_in_place(child)


class RepVitTrunk(nn.Module):
    """RepViT-M1 without its classifier, returning every stage's output (timm:
    `create_model("repvit_m1", features_only=True)`, a `FeatureListNet` over `repvit.RepVit`).

    The stages are attributes `stages_0` ... `stages_3` because that is how timm's feature
    extractor flattens `stages.{i}`, and so how the checkpoints name them.
    """

    use_channels_last = True  # in reduced-precision inference (see `channels_last_in_inference`)

    def __init__(self, config: EdgeTamVisionConfig):
        super().__init__()
        widths, depths = config.backbone_embed_dims, config.backbone_depths
        self.stem = RepVitStem(config.num_channels, widths[0], config.hidden_act)
        in_channels = widths[0]
        for index, (out_channels, depth) in enumerate(zip(widths, depths)):
            stage = RepVitStage(
                in_channels,
                out_channels,
                depth,
                config.backbone_mlp_ratio,
                config.backbone_kernel_size,
                config.hidden_act,
                downsample=index > 0,
            )
            self.add_module(f"stages_{index}", stage)
            in_channels = out_channels
        self.num_stages = len(widths)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(batch, 3, H, W) -> one (batch, width_i, H / 2**(i + 2), W / 2**(i + 2)) map per stage."""
        if self.use_channels_last:
            pixel_values = channels_last_in_inference(self, pixel_values)  # so are the stage outputs
        hidden_states = self.stem(pixel_values)
        stage_outputs = []
        for index in range(self.num_stages):
            hidden_states = getattr(self, f"stages_{index}")(hidden_states)
            stage_outputs.append(hidden_states)
        return tuple(stage_outputs)

    @torch.no_grad()
    def fuse(self) -> "RepVitTrunk":
        """Fold every BatchNorm into its conv and merge each token mixer's branches into one
        depthwise conv, in place (timm's `RepVit.fuse`). Uses the running statistics, so the result
        equals eval mode; fuse in float32 and cast afterwards. The fused trunk no longer loads
        checkpoints (its weight names change)."""
        _fuse_in_place(self)
        return self
