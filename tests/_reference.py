"""The references of the parity tests, in one place.

- `randomise_`: the one seeded randomiser of weights (tiny models and reference components).
- transformers' built-in EdgeTam image model and video components with random weights
  (`randomised_transformers_edgetam`, `transformers_component`), skipped where transformers
  lacks them.
- `run_image_case`: one image case of Meta's stored fixture run through our processor and model.
"""

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


def _repvit_m1_vision_config() -> dict:
    """transformers' EdgeTam vision config with EdgeTAM's trunk: timm's repvit_m1, every stage."""
    from transformers.models.timm_wrapper import TimmWrapperConfig

    backbone = TimmWrapperConfig(
        architecture="repvit_m1",
        model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    )
    return {
        "model_type": "edgetam_vision_model",
        "backbone_config": backbone.to_dict(),
        "backbone_channel_list": [384, 192, 96, 48],
    }


@functools.lru_cache(maxsize=1)
def randomised_transformers_edgetam():
    """transformers.EdgeTamModel with the EdgeTAM config and every parameter and buffer randomised.

    transformers' default vision config builds a ResNet-50 (a misspelled key), so the RepViT-M1
    backbone is named explicitly. Random values replace the init of the two heads so no weight is
    trivially zero or one; the scales keep activations O(1) through the heads.
    """
    require_transformers_edgetam()
    from transformers import EdgeTamConfig, EdgeTamModel

    model = EdgeTamModel(EdgeTamConfig(vision_config=_repvit_m1_vision_config())).eval()
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
def randomise_(module: torch.nn.Module, seed: int | torch.Generator = 0, buffers: bool = True) -> torch.nn.Module:
    """Fill every parameter (and buffer, unless `buffers` is False) of `module` with scaled Gaussian
    noise, in place, from `seed` (an int, or a generator to continue).

    Linear / conv weights get std 1 / sqrt(fan_in) so activations stay O(1) (a chaotic network
    would amplify kernel rounding past any tolerance); norms get 1 + noise; biases small noise;
    embeddings, tokens and the Fourier matrix unit noise.
    """
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    for submodule in module.modules():
        own_buffers = list(submodule.named_buffers(recurse=False)) if buffers else []
        for name, tensor in list(submodule.named_parameters(recurse=False)) + own_buffers:
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


def set_attn_implementation(module: torch.nn.Module, implementation: str) -> torch.nn.Module:
    """What `EdgeTamVideoModel.set_attn_implementation` does to a stand-alone component."""
    for submodule in module.modules():
        if hasattr(submodule, "attn_implementation"):
            submodule.attn_implementation = implementation
    return module


@functools.cache
def transformers_video_model(**config_overrides):
    """transformers' `EdgeTamVideoModel` with EdgeTAM's RepViT-M1 trunk (through timm), the rest
    transformers' defaults unless overridden, and its seeded random init."""
    require_transformers_edgetam()
    import transformers

    if not hasattr(transformers, "EdgeTamVideoModel"):
        pytest.skip("this transformers has no EdgeTamVideoModel")
    config = transformers.EdgeTamVideoConfig(vision_config=_repvit_m1_vision_config(), **config_overrides)
    torch.manual_seed(0)
    return transformers.EdgeTamVideoModel(config).eval()


def transformers_component(name: str, implementation: str = "sdpa", seed: int = 0) -> torch.nn.Module:
    """transformers' `EdgeTamVideoModel.<name>` with seeded random weights and the given attention
    (its memory encoder and spatial perceiver equal Meta's original bit for bit on CPU; see the
    notes in the tests)."""
    model = transformers_video_model()
    # The component's attention functions read the shared config at call time.
    model.config._attn_implementation = implementation
    # Its buffers are computed tables (rotary frequencies) that ours compute too: not weights.
    return randomise_(getattr(model, name), seed, buffers=False)


# ------------------------------------------------------------------------------- Meta's stored image cases


def _prompt_kwargs(case: dict, tensors: dict) -> dict:
    """The case's prompt in the processor's nested-list form: one image, one group per object."""
    prompt = case["prompt"]
    kwargs = {}
    if prompt["boxes"] is not None:
        kwargs["input_boxes"] = [prompt["boxes"]]
    elif prompt["box"] is not None:
        kwargs["input_boxes"] = [[prompt["box"]]]
    if prompt["points"] is not None:
        kwargs["input_points"] = [[prompt["points"]]]
        kwargs["input_labels"] = [[prompt["labels"]]]
    return kwargs


def run_image_case(case, tensors, model, processor, image, original_sizes, embeddings):
    """Our outputs for one image case of the stored run (`oracle`): its prompt through the processor,
    its mask prompt as stored, the image's `embeddings` computed once."""
    prompts = processor(images=image, return_tensors="pt", **_prompt_kwargs(case, tensors))
    model_kwargs = {key: prompts[key] for key in ("input_points", "input_labels", "input_boxes") if key in prompts}
    if case["prompt"]["mask_from"] is not None:
        model_kwargs["input_masks"] = tensors[f"{case['name']}/in_mask_input"][None]  # (1, 1, 256, 256)
    with torch.no_grad():
        return model(image_embeddings=embeddings, multimask_output=case["multimask_output"], **model_kwargs)
