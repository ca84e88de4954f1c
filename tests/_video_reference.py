"""Shared by the memory-component tests: a tiny video config, seeded weights, and transformers'
built-in `EdgeTamVideoModel` as the parity reference (its memory encoder and spatial perceiver
equal Meta's original bit for bit on CPU; see the notes in the tests)."""

import functools
import math

import pytest
import torch

from edgetam_hf.configuration import EdgeTamVideoConfig


def tiny_video_config(**overrides) -> EdgeTamVideoConfig:
    """Small memory components: 32-channel frames, 16-channel memories, 2x2 perceiver windows."""
    fields = dict(
        memory_attention_hidden_size=32,
        memory_attention_num_attention_heads=2,
        memory_attention_mlp_hidden_size=64,
        memory_attention_rope_k_sizes=[2, 2],
        perceiver_resampler_num_latents=4,
        perceiver_resampler_num_latents_2d=4,
        perceiver_resampler_hidden_size=16,
        perceiver_resampler_mlp_intermediate_size=32,
        perceiver_resampler_num_attention_heads=2,
        perceiver_resampler_attention_head_dim=8,
        memory_encoder_hidden_size=32,
        memory_encoder_output_channels=16,
        mask_downsampler_embed_dim=32,
        mask_downsampler_total_stride=4,
        memory_fuser_embed_dim=32,
        memory_fuser_intermediate_dim=64,
    )
    fields.update(overrides)
    return EdgeTamVideoConfig(**fields)


def randomize_parameters_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Seeded weights far from the initialisation, so that no branch is an identity: matrices
    ~ N(0, 1 / fan_in), 1-D weights (norms) ~ 1 + N(0, 0.2), biases and layer scales ~ N(0, 0.2)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.ndim >= 2:
                parameter.copy_(noise / math.sqrt(parameter[0].numel()))
            elif name.endswith("weight"):
                parameter.copy_(1 + 0.2 * noise)
            else:
                parameter.copy_(0.2 * noise)
    return module


def set_attn_implementation(module: torch.nn.Module, implementation: str) -> torch.nn.Module:
    """What `EdgeTamVideoModel.set_attn_implementation` does to a stand-alone component."""
    for submodule in module.modules():
        if hasattr(submodule, "attn_implementation"):
            submodule.attn_implementation = implementation
    return module


@functools.cache
def _transformers_video_model():
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "EdgeTamVideoModel"):
        pytest.skip("this transformers has no EdgeTamVideoModel")
    from transformers.models.timm_wrapper import TimmWrapperConfig

    # The EdgeTAM configuration: a RepViT-M1 trunk through timm, the rest transformers' defaults.
    backbone_config = TimmWrapperConfig(
        architecture="repvit_m1",
        model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    )
    config = transformers.EdgeTamVideoConfig(
        vision_config={
            "model_type": "edgetam_vision_model",
            "backbone_config": backbone_config.to_dict(),
            "backbone_channel_list": [384, 192, 96, 48],
        }
    )
    return transformers.EdgeTamVideoModel(config).eval()


def transformers_component(name: str, implementation: str = "sdpa", seed: int = 0) -> torch.nn.Module:
    """transformers' `EdgeTamVideoModel.<name>` with seeded random weights and the given attention."""
    model = _transformers_video_model()
    # The component's attention functions read the shared config at call time.
    model.config._attn_implementation = implementation
    return randomize_parameters_(getattr(model, name), seed)
