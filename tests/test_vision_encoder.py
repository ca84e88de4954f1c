"""The image encoder (RepViT-M1 trunk + FPN neck): shapes, fuse(), and parity with timm's
`repvit_m1`, transformers' `EdgeTamVisionModel` and the original checkpoint / oracle run."""

import json
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgetam_hf.configuration import EdgeTamVisionConfig
from edgetam_hf.position_encoding import SinePositionEncoding
from edgetam_hf.repvit import FoldedForInference, RepVitConvNorm, RepVitTokenMixer
from edgetam_hf.vision_encoder import EdgeTamVisionEncoder
from _tolerance import assert_same_float32

TINY_CONFIG = dict(backbone_embed_dims=[8, 16, 24, 32], backbone_depths=[1, 1, 3, 1], fpn_hidden_size=16)
# From the original checkpoint's key listing: trunk 4,713,712 + neck 185,344.
RELEASED_NUM_PARAMETERS = 4_899_056


def randomise_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random affine parameters and running statistics (fresh ones are
    identities, which would hide a wrong fold or a swapped mean / variance), and put it in eval mode."""
    generator = torch.Generator().manual_seed(seed)

    def normal(tensor, mean, std):
        return mean + std * torch.randn(tensor.shape, generator=generator)

    with torch.no_grad():
        for submodule in module.modules():
            if isinstance(submodule, nn.BatchNorm2d):
                submodule.weight.copy_(normal(submodule.weight, 1.0, 0.2))
                submodule.bias.copy_(normal(submodule.bias, 0.0, 0.2))
                submodule.running_mean.copy_(normal(submodule.running_mean, 0.0, 0.2))
                submodule.running_var.copy_(0.5 + torch.rand(submodule.running_var.shape, generator=generator))
                submodule.num_batches_tracked.fill_(7)
    return module.eval()


def assert_tuples_close(actual, expected):
    assert len(actual) == len(expected)
    for actual_tensor, expected_tensor in zip(actual, expected, strict=True):
        assert_same_float32(actual_tensor, expected_tensor)


# ----------------------------------------------------------------------------- default tier


def test_tiny_config_output_shapes_order_and_position_encoding():
    config = EdgeTamVisionConfig(**TINY_CONFIG)
    encoder = randomise_(EdgeTamVisionEncoder(config))
    pixel_values = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fpn_hidden_states, fpn_position_encoding = encoder(pixel_values)

    # High to low resolution, the lowest of the four trunk levels dropped (the original's scalp=1).
    expected_shapes = [(2, 16, 16, 16), (2, 16, 8, 8), (2, 16, 4, 4)]
    assert [tuple(t.shape) for t in fpn_hidden_states] == expected_shapes
    assert [tuple(t.shape) for t in fpn_position_encoding] == expected_shapes
    sine = SinePositionEncoding(16)
    for encoding in fpn_position_encoding:
        torch.testing.assert_close(encoding[1], encoding[0], rtol=0, atol=0)
        torch.testing.assert_close(encoding[0], sine(*encoding.shape[-2:]), rtol=0, atol=0)


def test_neck_top_down_only_on_configured_levels():
    config = EdgeTamVisionConfig(**TINY_CONFIG)
    encoder = randomise_(EdgeTamVisionEncoder(config))
    trunk_features = encoder.backbone(torch.randn(1, 3, 64, 64))
    with torch.no_grad():
        fpn_hidden_states, _ = encoder.neck(trunk_features)
        convs = encoder.neck.convs  # convs[k] reads level 3 - k
        lowest = convs[0](trunk_features[3])
        level_2 = convs[1](trunk_features[2]) + F.interpolate(lowest, scale_factor=2.0, mode="nearest")
    assert_same_float32(fpn_hidden_states[2], level_2)
    assert_same_float32(fpn_hidden_states[1], convs[2](trunk_features[1]))
    assert_same_float32(fpn_hidden_states[0], convs[3](trunk_features[0]))


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_fuse_tiny_gives_same_outputs(kernel_size):
    config = EdgeTamVisionConfig(**TINY_CONFIG, backbone_kernel_size=kernel_size)
    encoder = randomise_(EdgeTamVisionEncoder(config))
    pixel_values = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        unfused = encoder(pixel_values)
        assert encoder.fuse() is encoder
        fused = encoder(pixel_values)

    leftovers = [m for m in encoder.modules() if isinstance(m, (nn.BatchNorm2d, RepVitConvNorm, RepVitTokenMixer))]
    assert leftovers == []
    assert_tuples_close(fused[0], unfused[0])


def test_fuse_full_size_trunk_gives_same_outputs():
    encoder = randomise_(EdgeTamVisionEncoder(EdgeTamVisionConfig()))
    pixel_values = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        unfused = encoder.backbone(pixel_values)
        encoder.fuse()
        fused = encoder.backbone(pixel_values)
    for fused_map, unfused_map in zip(fused, unfused, strict=True):
        # Relative to the map's scale: the fold reorders float32 sums over 20 residual blocks.
        assert (fused_map - unfused_map).abs().max() <= 1e-4 * unfused_map.abs().max()


def test_default_config_parameters_and_key_layout():
    encoder = EdgeTamVisionEncoder(EdgeTamVisionConfig())
    assert sum(p.numel() for p in encoder.parameters()) == RELEASED_NUM_PARAMETERS
    keys = list(encoder.state_dict())
    assert len(keys) == 676 + 8  # trunk weights and BN buffers, neck weights and biases
    assert keys[0] == "backbone.timm_model.stem.conv1.c.weight"
    assert "backbone.timm_model.stages_0.blocks.0.token_mixer.conv.bn.num_batches_tracked" in keys
    assert "backbone.timm_model.stages_3.downsample.spatial_downsample.c.weight" in keys
    neck_keys = [key for key in keys if key.startswith("neck.")]
    assert neck_keys == [f"neck.convs.{i}.{name}" for i in range(4) for name in ("weight", "bias")]
    assert encoder.state_dict()["neck.convs.0.weight"].shape == (256, 384, 1, 1)


# ----------------------------------------------------------------------------- parity tier


@pytest.mark.parity
def test_trunk_matches_timm_repvit_m1():
    timm = pytest.importorskip("timm")
    reference = randomise_(timm.create_model("repvit_m1", features_only=True, pretrained=False), seed=1)
    trunk = EdgeTamVisionEncoder(EdgeTamVisionConfig()).backbone.timm_model.eval()
    assert set(trunk.state_dict()) == set(reference.state_dict())
    trunk.load_state_dict(reference.state_dict(), strict=True)

    pixel_values = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = reference(pixel_values), trunk(pixel_values)
    assert [t.shape[1] for t in actual] == [48, 96, 192, 384]
    assert_tuples_close(actual, expected)


@pytest.mark.parity
def test_fuse_matches_timm_repvit_fuse():
    timm = pytest.importorskip("timm")
    # `features_only` models have no fuse(); take the classifier model, whose trunk is the same.
    reference = randomise_(timm.create_model("repvit_m1", pretrained=False), seed=3)

    def trunk_state(model):
        state = model.state_dict()
        return {re.sub(r"^stages\.(\d+)\.", r"stages_\1.", k): v for k, v in state.items() if not k.startswith("head.")}

    trunk = EdgeTamVisionEncoder(EdgeTamVisionConfig()).backbone.timm_model
    trunk.load_state_dict(trunk_state(reference), strict=True)
    reference.fuse()
    trunk.fuse()
    expected, actual = trunk_state(reference), trunk.state_dict()
    assert list(actual) == list(expected)
    for key in actual:
        assert_same_float32(actual[key], expected[key], msg=key)


@pytest.fixture(scope="module")
def transformers_vision_model():
    pytest.importorskip("timm")
    transformers = pytest.importorskip("transformers")
    from transformers.models.timm_wrapper import TimmWrapperConfig

    # transformers' default EdgeTamConfig builds a ResNet-50 trunk (a misspelled key); name RepViT-M1.
    backbone_config = TimmWrapperConfig(
        architecture="repvit_m1",
        model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    )
    config = transformers.EdgeTamConfig(vision_config={"backbone_config": backbone_config.to_dict()})
    return randomise_(transformers.EdgeTamVisionModel(config.vision_config), seed=2)


@pytest.mark.parity
def test_default_config_parameter_count_equals_transformers(transformers_vision_model):
    reference_count = sum(p.numel() for p in transformers_vision_model.parameters())
    assert reference_count == RELEASED_NUM_PARAMETERS
    encoder = EdgeTamVisionEncoder(EdgeTamVisionConfig())
    assert sum(p.numel() for p in encoder.parameters()) == reference_count


@pytest.mark.parity
def test_matches_transformers_edgetam_vision_model(transformers_vision_model):
    reference_state = transformers_vision_model.state_dict()
    encoder = EdgeTamVisionEncoder(EdgeTamVisionConfig()).eval()
    assert list(encoder.state_dict()) == list(reference_state)
    encoder.load_state_dict(reference_state, strict=True)

    pixel_values = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = transformers_vision_model(pixel_values)
        fpn_hidden_states, fpn_position_encoding = encoder(pixel_values)
    assert [tuple(t.shape) for t in fpn_hidden_states] == [(1, 256, 256, 256), (1, 256, 128, 128), (1, 256, 64, 64)]
    assert_tuples_close(fpn_hidden_states, expected.fpn_hidden_states)
    assert_tuples_close(fpn_position_encoding, expected.fpn_position_encoding)


# ----------------------------------------------------------------------------- original checkpoint


def original_to_our_key(original_key: str) -> str | None:
    """The rule for the image encoder (weights.py owns the full table): the trunk keeps timm's names
    under another prefix, the neck drops the `.conv` of its one-module Sequentials."""
    trunk = re.match(r"^image_encoder\.trunk\.body\.(.+)$", original_key)
    if trunk:
        return f"backbone.timm_model.{trunk.group(1)}"
    neck = re.match(r"^image_encoder\.neck\.convs\.(\d+)\.conv\.(weight|bias)$", original_key)
    if neck:
        return f"neck.convs.{neck.group(1)}.{neck.group(2)}"
    return None


def test_original_checkpoint_matches_oracle_features(fixtures_dir):
    from safetensors.torch import load_file

    checkpoint = torch.load(fixtures_dir / "edgetam_random_seed0.pt", map_location="cpu", weights_only=True)["model"]
    encoder_state = {original_to_our_key(k): v for k, v in checkpoint.items() if original_to_our_key(k)}
    encoder = EdgeTamVisionEncoder(EdgeTamVisionConfig()).eval()
    assert set(encoder_state) == set(encoder.state_dict())
    encoder.load_state_dict(encoder_state, strict=True)

    # The original's preprocessing: float in [0, 1], antialiased bilinear resize, ImageNet normalisation.
    image = load_file(fixtures_dir / "original_seed0" / "oracle.safetensors")["input/image_uint8"]
    pixels = image.permute(2, 0, 1)[None].float().div(255)
    pixels = F.interpolate(pixels, size=(1024, 1024), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        fpn_hidden_states, _ = encoder((pixels - mean) / std)

        # The oracle stored what the image predictor keeps: the lowest level plus `no_mem_embed`,
        # and the two higher levels through the mask decoder's conv_s0 / conv_s1.
        image_embed = fpn_hidden_states[2] + checkpoint["no_mem_embed"].view(1, -1, 1, 1)
        high_res = [
            F.conv2d(fpn_hidden_states[level], checkpoint[f"{name}.weight"], checkpoint[f"{name}.bias"])
            for level, name in ((0, "sam_mask_decoder.conv_s0"), (1, "sam_mask_decoder.conv_s1"))
        ]
    recorded = json.loads((fixtures_dir / "original_seed0" / "manifest.json").read_text())["image"]["features"]
    for tensor, stats in zip([image_embed, *high_res], [recorded["image_embed"], *recorded["high_res_feats"]], strict=True):
        assert list(tensor.shape) == stats["shape"]
        assert abs(tensor.mean().item() - stats["mean"]) <= 1e-5 * stats["std"]
        assert abs(tensor.std().item() - stats["std"]) <= 1e-5 * stats["std"]


def test_inference_runs_the_folded_trunk_and_refolds_after_a_load():
    # In eval mode without gradients the conv-norms run folded (timm's fuse), kept between calls:
    # by default in bfloat16 (on channels-last maps), in float32 when asked; with gradients, and in
    # float32 by default, they run branch by branch.
    encoder = randomise_(EdgeTamVisionEncoder(EdgeTamVisionConfig(**TINY_CONFIG))).eval()
    state_keys = set(encoder.state_dict())
    pixels = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        trunk_outputs = encoder.to(torch.bfloat16).backbone(pixels.bfloat16())
    assert all(output.is_contiguous(memory_format=torch.channels_last) for output in trunk_outputs)
    assert any(module._folded is not None for module in encoder.modules() if isinstance(module, FoldedForInference))
    assert set(encoder.state_dict()) == state_keys
    encoder.float()
    with torch.no_grad():
        encoder(pixels)
    assert all(module._folded is None for module in encoder.modules() if isinstance(module, FoldedForInference))
    encoder.fold_for_inference(True)

    def branch_by_branch_and_folded():
        with torch.enable_grad():
            unfolded = encoder(pixels)[0][-1].detach()
        with torch.no_grad():
            return unfolded, encoder(pixels)[0][-1]

    unfolded, folded = branch_by_branch_and_folded()
    scale = unfolded.abs().max().item()
    assert (folded - unfolded).abs().max().item() <= 1e-5 * scale
    weights = {name: tensor * 1.5 if name.endswith("running_var") else tensor for name, tensor in encoder.state_dict().items()}
    encoder.load_state_dict(weights)
    reloaded_unfolded, reloaded_folded = branch_by_branch_and_folded()
    assert not torch.allclose(reloaded_unfolded, unfolded)
    assert (reloaded_folded - reloaded_unfolded).abs().max().item() <= 1e-5 * scale
