"""The implementations compared, built from one configuration with one set of weights.

`ours` is edgetam-hf; `transformers` is transformers' built-in EdgeTam (its RepViT trunk comes
from timm); `sam2` is Meta's original package, built from an original-format checkpoint, so it
takes part only when one is given. The weights come from that checkpoint (mapped to our names
by `edgetam_hf.weights`; transformers' names are ours, so the same state dict loads into both),
else from transformers' random initialisation, loaded into ours. Loading is strict both ways.
"""

import contextlib
import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgetam_hf import EdgeTamConfig, EdgeTamImageProcessor, EdgeTamModel, EdgeTamProcessor, EdgeTamVideoConfig
from edgetam_hf.weights import fit_original_state_dict, read_original_checkpoint

OURS, TRANSFORMERS, ORIGINAL = "ours", "transformers", "sam2"
SEED = 0
ORIGINAL_CONFIG = "configs/edgetam.yaml"  # resolved by hydra inside the `sam2` package
_TIMM_ARCHITECTURE = "repvit_m1"
_TIMM_FEATURE_ARGS = {"features_only": True, "out_indices": [0, 1, 2, 3]}

# --tiny: every component shrunk (16 to 128 channels, one block per stage, a 128x128 input), so the
# smoke test runs the whole harness in seconds. The field names exist in both libraries' configs.
TINY_IMAGE_SIZE = 128
# An object pointer (hidden_size wide) is cut into tokens of the memory width, which transformers
# fixes at 64, and transformers' video model fails when there is only one token: so 128 (two).
_TINY_HIDDEN = 128
_TINY_IMAGE_FIELDS = {
    "vision_config": {
        "backbone_embed_dims": [16, 16, 32, 32],
        "backbone_depths": [1, 1, 1, 1],
        "backbone_feature_sizes": [[32, 32], [16, 16], [8, 8]],
        "fpn_hidden_size": _TINY_HIDDEN,
    },
    "prompt_encoder_config": {"hidden_size": _TINY_HIDDEN, "image_size": TINY_IMAGE_SIZE},
    "mask_decoder_config": {
        "hidden_size": _TINY_HIDDEN,
        "mlp_dim": 128,
        "num_attention_heads": 2,
        "iou_head_hidden_dim": _TINY_HIDDEN,
    },
}
_TINY_VIDEO_FIELDS = {
    "image_size": TINY_IMAGE_SIZE,
    "memory_attention_hidden_size": _TINY_HIDDEN,
    "memory_attention_mlp_hidden_size": 128,
    "memory_attention_rope_feat_sizes": [8, 8],  # the 8x8 feature grid of a 128x128 input
    "memory_attention_rope_k_sizes": [2, 2],  # the perceiver's 2x2 grid of 2D latents
    "perceiver_resampler_num_latents": 4,
    "perceiver_resampler_num_latents_2d": 4,
    "memory_encoder_hidden_size": _TINY_HIDDEN,
    "mask_downsampler_embed_dim": _TINY_HIDDEN,
    "memory_fuser_embed_dim": _TINY_HIDDEN,
    "memory_fuser_intermediate_dim": 128,
}


@dataclass
class Lineup:
    """One model kind (image or video) in every implementation that could be built, same weights."""

    models: dict[str, object]  # implementation name -> model (sam2: its image / video predictor)
    processors: dict[str, object]  # implementation name -> processor (sam2 does its own)
    image_size: int  # side of the square model input
    weights: str  # where the weights came from
    unavailable: dict[str, str] = field(default_factory=dict)  # implementation -> why it is not here

    @property
    def names(self) -> list[str]:
        return list(self.models)


def our_config(video: bool, tiny: bool):
    config_class = EdgeTamVideoConfig if video else EdgeTamConfig
    if not tiny:
        return config_class()
    fields = {key: dict(value) for key, value in _TINY_IMAGE_FIELDS.items()}
    if video:
        fields.update(_TINY_VIDEO_FIELDS)
    return config_class(**fields)


def build_lineup(video: bool, options, transformers, sam2) -> Lineup:
    """Builds the image (video=False) or video models of every available implementation.

    `options`: the run's arguments (tiny, weights, device, dtype); `transformers` / `sam2`: the
    imported modules or None.
    """
    config = our_config(video, options.tiny)
    image_size = config.prompt_encoder_config.image_size
    unavailable = {}
    torch.manual_seed(SEED)  # without a checkpoint, the random initialisation is the shared weights
    models = {OURS: _our_model_class(video)(config).eval()}
    processors = {OURS: _our_processor(video, image_size)}
    if transformers is not None:
        model_class = transformers.EdgeTamVideoModel if video else transformers.EdgeTamModel
        models[TRANSFORMERS] = model_class(transformers_config(transformers, config, video)).eval()
        processors[TRANSFORMERS] = _transformers_processor(transformers, video, image_size)

    state_dict, weights = _shared_state_dict(models, options.weights)
    for name, model in models.items():
        _load_strictly(model, state_dict, name)
        model.to(device=options.device, dtype=options.dtype)

    if sam2 is not None:
        if options.weights is None:
            unavailable[ORIGINAL] = "it needs an original-format checkpoint (--weights) to share the weights"
        else:
            models[ORIGINAL] = _original_model(video, options.weights, options.device, options.dtype)
    return Lineup(models, processors, image_size, weights, unavailable)


def transformers_config(transformers, config, video: bool):
    """Our config as transformers' `EdgeTamConfig` / `EdgeTamVideoConfig`: the same fields, with the
    trunk named as timm's repvit_m1 with our stage widths and depths (which --tiny changes)."""
    config_class = transformers.EdgeTamVideoConfig if video else transformers.EdgeTamConfig
    ours = config.to_dict()
    theirs = _known_fields(config_class, ours)
    for key in ("prompt_encoder_config", "mask_decoder_config"):
        theirs[key] = _known_fields(config_class.sub_configs[key], ours[key])
    theirs["prompt_encoder_config"]["scale"] = int(ours["prompt_encoder_config"]["scale"])  # typed int there
    theirs["vision_config"] = _transformers_vision_config(transformers, ours["vision_config"])
    if video:
        theirs["rope_parameters"] = {"rope_type": "axial", "rope_theta": ours["memory_attention_rope_theta"]}
    return config_class(**theirs)


def _transformers_vision_config(transformers, vision: dict) -> dict:
    from transformers.models.timm_wrapper import TimmWrapperConfig

    # timm's keyword arguments override the architecture's own stage widths and depths.
    trunk = {
        "in_chans": vision["num_channels"],
        **_TIMM_FEATURE_ARGS,
        "embed_dim": vision["backbone_embed_dims"],
        "depth": vision["backbone_depths"],
        "mlp_ratio": _int_if_whole(vision["backbone_mlp_ratio"]),  # timm sizes layers with it
        "kernel_size": vision["backbone_kernel_size"],
    }
    # Both image and video configs read the vision config through AutoConfig: its model_type picks the class.
    theirs = _known_fields(transformers.EdgeTamVisionConfig, vision)
    theirs["model_type"] = transformers.EdgeTamVisionConfig.model_type
    theirs["backbone_config"] = TimmWrapperConfig(architecture=_TIMM_ARCHITECTURE, model_args=trunk).to_dict()
    return theirs


def _int_if_whole(value: float):
    return int(value) if float(value).is_integer() else value


def _known_fields(config_class, values: dict) -> dict:
    """The entries of `values` that `config_class` has a field for (drops model types, our extras)."""
    names = {item.name for item in dataclasses.fields(config_class)} - {"model_type"}
    return {key: value for key, value in values.items() if key in names}


def _shared_state_dict(models: dict, checkpoint: Path | None) -> tuple[dict, str]:
    if checkpoint is not None:
        original = read_original_checkpoint(checkpoint)
        return fit_original_state_dict(models[OURS], original), f"original checkpoint {checkpoint}"
    if TRANSFORMERS in models:
        return models[TRANSFORMERS].state_dict(), f"transformers' random initialisation (torch seed {SEED})"
    return models[OURS].state_dict(), f"edgetam-hf's random initialisation (torch seed {SEED})"


def _load_strictly(model: torch.nn.Module, state_dict: dict, name: str) -> None:
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"the shared weights do not fit {name}'s {type(model).__name__}: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )


def _our_model_class(video: bool):
    if not video:
        return EdgeTamModel
    return import_our_video_classes()[0]


def import_our_video_classes():
    """`(EdgeTamVideoModel, EdgeTamVideoProcessor)`; raises ImportError while they do not exist."""
    try:
        from edgetam_hf import EdgeTamVideoModel, EdgeTamVideoProcessor
    except ImportError:
        # Before the package exports them, the modules that define them.
        from edgetam_hf.modeling_video import EdgeTamVideoModel
        from edgetam_hf.video_processing import EdgeTamVideoProcessor
    return EdgeTamVideoModel, EdgeTamVideoProcessor


def _our_processor(video: bool, image_size: int):
    image_processor = EdgeTamImageProcessor(size={"height": image_size, "width": image_size})
    processor_class = import_our_video_classes()[1] if video else EdgeTamProcessor
    return processor_class(image_processor=image_processor)


def _transformers_processor(transformers, video: bool, image_size: int):
    size = {"height": image_size, "width": image_size}
    image_processor = transformers.Sam2ImageProcessor(size=size)
    if not video:
        return transformers.Sam2Processor(image_processor=image_processor)
    return transformers.Sam2VideoProcessor(
        image_processor=image_processor, video_processor=transformers.Sam2VideoVideoProcessor(size=size)
    )


def _original_model(video: bool, checkpoint: Path, device: torch.device, dtype: torch.dtype):
    """Meta's image predictor (video=False) or video predictor, as its README builds them."""
    from sam2.build_sam import build_sam2, build_sam2_video_predictor
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    with _quiet_stdout(), _timm_trunk_without_download():
        if video:
            model = build_sam2_video_predictor(ORIGINAL_CONFIG, str(checkpoint), device=str(device))
        else:
            model = SAM2ImagePredictor(build_sam2(ORIGINAL_CONFIG, str(checkpoint), device=str(device)))
    (model if video else model.model).to(dtype=dtype)
    return model


@contextlib.contextmanager
def _timm_trunk_without_download():
    """The original's trunk asks timm for ImageNet weights, a download (impossible offline) that
    the checkpoint overwrites anyway: while building, timm is told not to fetch them."""
    import sam2.modeling.backbones.timm as original_trunk

    create_model = original_trunk.create_model
    original_trunk.create_model = lambda *args, **kwargs: create_model(*args, **{**kwargs, "pretrained": False})
    try:
        yield
    finally:
        original_trunk.create_model = create_model


def _quiet_stdout():
    return contextlib.redirect_stdout(io.StringIO())  # the builders print progress
