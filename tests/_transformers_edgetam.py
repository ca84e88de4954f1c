"""transformers' built-in EdgeTam image model with random weights, the reference of the head parity tests."""

import functools

import pytest
import torch


def require_transformers_edgetam():
    """Skip the calling test unless transformers' EdgeTam (which needs timm for its trunk) imports."""
    pytest.importorskip("timm", reason="transformers' EdgeTam builds its RepViT trunk with timm")
    try:
        from transformers import EdgeTamModel  # noqa: F401
    except ImportError as error:
        pytest.skip(f"transformers has no importable EdgeTamModel: {error}")


@functools.lru_cache(maxsize=1)
def randomised_transformers_edgetam():
    """transformers.EdgeTamModel with the EdgeTAM config and every parameter and buffer randomised.

    transformers' default vision config builds a ResNet-50 (a misspelled key), so the RepViT-M1
    backbone is named explicitly. Random values replace the init of the two heads so no weight is
    trivially zero or one; the scales keep activations O(1) through the heads.
    """
    require_transformers_edgetam()
    from transformers import EdgeTamConfig, EdgeTamModel
    from transformers.models.timm_wrapper import TimmWrapperConfig

    backbone = TimmWrapperConfig(
        architecture="repvit_m1",
        model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    )
    model = EdgeTamModel(EdgeTamConfig(vision_config={"backbone_config": backbone.to_dict()})).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for head in (model.prompt_encoder, model.mask_decoder):
            randomise_(head, generator)
        # transformers keeps a second copy of the frequency matrix for the image grid; the
        # original has one (`pe_layer`), and a converted checkpoint holds it twice.
        model.shared_image_embedding.positional_embedding.copy_(
            model.prompt_encoder.shared_embedding.positional_embedding
        )
    return model


@torch.no_grad()
def randomise_(module: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Fill every parameter and buffer of `module` with scaled Gaussian noise, in place.

    Linear / conv weights get std 1 / sqrt(fan_in) so activations stay O(1) (a chaotic network
    would amplify kernel rounding past any tolerance); norms get 1 + noise; biases small noise;
    embeddings, tokens and the Fourier matrix unit noise.
    """
    for submodule in module.modules():
        for name, tensor in list(submodule.named_parameters(recurse=False)) + list(
            submodule.named_buffers(recurse=False)
        ):
            noise = torch.randn(tensor.shape, generator=generator)
            if isinstance(submodule, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and name == "weight":
                # A transposed 2x2 stride-2 conv sums over its input channels only.
                fan_in = tensor.shape[0] if isinstance(submodule, torch.nn.ConvTranspose2d) else tensor[0].numel()
                tensor.copy_(noise / fan_in**0.5)
            elif isinstance(submodule, torch.nn.LayerNorm) and name == "weight":
                tensor.copy_(1.0 + 0.2 * noise)
            elif name == "bias":
                tensor.copy_(0.2 * noise)
            else:
                tensor.copy_(noise)
    return module
