"""config.json in both libraries' vocabularies: ours and transformers' EdgeTam.

Our folders keep our model type (`edgetam_hf` / `edgetam_hf_video`: the Auto classes and
`pipeline` find our classes by it) but write what transformers could not read otherwise in its
vocabulary: the three sub-configs (the trunk as a `timm_wrapper` backbone config naming
`repvit_m1`, transformers' sub-config types) and the memory attention's `rope_parameters`; every
other field has the same name in both. A config that transformers' format cannot express (a trunk
other than repvit_m1, as in tiny test configs) is written in our own vocabulary instead. Both
vocabularies are read under either library's model types.

This module works on dicts and imports no config class (configuration.py imports it).
"""

import contextlib
import json
import logging

from .remote_code import auto_map

logger = logging.getLogger(__name__)

# timm's `repvit_m1` in our vision config's terms; the only trunk transformers' format can name.
REPVIT_M1_TRUNK = {
    "backbone_embed_dims": [48, 96, 192, 384],
    "backbone_depths": [2, 2, 14, 2],
    "backbone_mlp_ratio": 2.0,
    "backbone_kernel_size": 3,
}
REPVIT_M1_ARCHITECTURE = "repvit_m1"
# What EdgeTAM asks of timm: every stage's feature map (the FPN neck reads all four).
_TIMM_FEATURE_ARGS = {"features_only": True, "out_indices": [0, 1, 2, 3]}

# Model types of the image and the video model: ours -> transformers'.
TRANSFORMERS_MODEL_TYPES = {"edgetam_hf": "edgetam", "edgetam_hf_video": "edgetam_video"}
_TRANSFORMERS_VISION_MODEL_TYPE = "edgetam_vision_model"
_OUR_SUB_CONFIG_MODEL_TYPES = {
    "vision_config": "edgetam_hf_vision",
    "prompt_encoder_config": "edgetam_hf_prompt_encoder",
    "mask_decoder_config": "edgetam_hf_mask_decoder",
}
# transformers' video config describes memory attention's RoPE as `rope_parameters` (axial RoPE).
_ROPE_TYPE = "axial"
_DEFAULT_ROPE_THETA = 10000.0


# ---------------------------------------------------------------------------- config.json, read


def config_dict_for(config_class, config_dict: dict) -> dict:
    """A config.json's dict, in either library's vocabulary, in ours for `config_class`.

    Refuses other models (SAM 2's Hiera, a ResNet trunk, ...) with a message naming what it found,
    and a video config reading an image folder.
    """
    model_type = config_dict.get("model_type", config_class.model_type)
    known = [*TRANSFORMERS_MODEL_TYPES, *TRANSFORMERS_MODEL_TYPES.values()]
    if model_type not in known:
        raise ValueError(f"config.json describes a {model_type!r} model, not EdgeTAM (model_type one of {known})")
    if _is_video_type(config_class.model_type) and not _is_video_type(model_type):
        raise ValueError(
            f"this folder holds the image model only (model_type {model_type!r}), without the memory weights "
            "that video tracking needs; convert Meta's checkpoint with the video model: "
            "`edgetam-hf convert edgetam.pt FOLDER` (the default --model both)"
        )
    ours = dict(config_dict)
    if "vision_config" not in ours and model_type in TRANSFORMERS_MODEL_TYPES.values():
        raise ValueError(
            "config.json has no vision_config: transformers' EdgeTam default there is not EdgeTAM's "
            "encoder (a SAM 2 Hiera or a ResNet-50), so it must name the repvit_m1 backbone"
        )
    for key in _OUR_SUB_CONFIG_MODEL_TYPES:
        # a vision_config that is not a dict is refused by name; the others default when absent
        if (key == "vision_config" and key in ours) or isinstance(ours.get(key), dict):
            ours[key] = sub_config_dict_for(key, ours[key])
    if "rope_parameters" in ours:
        ours["memory_attention_rope_theta"] = _rope_theta(ours.pop("rope_parameters"))
    return ours


def sub_config_dict_for(key: str, sub_config: dict) -> dict:
    """One sub-config's dict (`key` as in config.json: "vision_config", ...), in either library's
    vocabulary, in ours; also what a sub-config class's `from_pretrained` reads from a whole folder."""
    if key == "vision_config":
        return _vision_from_disk(sub_config)
    return dict(sub_config, model_type=_OUR_SUB_CONFIG_MODEL_TYPES[key])


def _is_video_type(model_type: str) -> bool:
    return model_type in ("edgetam_hf_video", TRANSFORMERS_MODEL_TYPES["edgetam_hf_video"])


def _vision_from_disk(vision: dict) -> dict:
    if not isinstance(vision, dict):
        raise ValueError(f"vision_config must be a dict, got {type(vision).__name__}")
    # Without a model type, a backbone config says which vocabulary this is.
    ours_type = _OUR_SUB_CONFIG_MODEL_TYPES["vision_config"]
    model_type = vision.get("model_type", _TRANSFORMERS_VISION_MODEL_TYPE if "backbone_config" in vision else ours_type)
    if model_type == ours_type:
        return vision
    if model_type != _TRANSFORMERS_VISION_MODEL_TYPE:
        raise ValueError(
            f"vision_config has model_type {model_type!r}: edgetam-hf implements EdgeTAM's RepViT-M1 "
            f"encoder ({_TRANSFORMERS_VISION_MODEL_TYPE!r}) only"
        )
    if vision.get("backbone_config") is None:
        raise ValueError(
            "vision_config has no backbone_config: transformers would build its default trunk (a "
            f"ResNet-50), not EdgeTAM's timm {REPVIT_M1_ARCHITECTURE!r}"
        )
    ours = {key: value for key, value in vision.items() if key != "backbone_config"}
    ours.update(_trunk_from_timm_config(vision["backbone_config"]), model_type=ours_type)
    return ours


def _trunk_from_timm_config(backbone: dict) -> dict:
    """transformers' `timm_wrapper` backbone config -> our trunk fields; only repvit_m1 is accepted."""
    if not isinstance(backbone, dict) or backbone.get("model_type") != "timm_wrapper":
        found = backbone.get("model_type") if isinstance(backbone, dict) else type(backbone).__name__
        raise ValueError(
            f"vision_config.backbone_config must be a timm_wrapper config naming {REPVIT_M1_ARCHITECTURE!r}, "
            f"found {found!r}"
        )
    architecture = str(backbone.get("architecture", ""))
    # A pretrained tag (`repvit_m1.dist_in1k`) names the same network.
    if architecture.split(".")[0] != REPVIT_M1_ARCHITECTURE:
        raise ValueError(
            f"the vision backbone is timm {architecture!r}; edgetam-hf implements EdgeTAM's "
            f"{REPVIT_M1_ARCHITECTURE!r} trunk only"
        )
    model_args = dict(backbone.get("model_args") or {})
    num_channels = model_args.pop("in_chans", 3)
    for key, expected in _TIMM_FEATURE_ARGS.items():
        value = model_args.pop(key, None)
        if value is None or (list(value) if isinstance(value, (list, tuple)) else value) != expected:
            raise ValueError(
                f"the repvit_m1 backbone must be built with {key}={expected} (EdgeTAM's FPN reads every "
                f"stage), got {value!r}"
            )
    if model_args:
        raise ValueError(
            f"the repvit_m1 backbone's model_args {sorted(model_args)} change the trunk; edgetam-hf builds "
            "the released repvit_m1"
        )
    return {**REPVIT_M1_TRUNK, "num_channels": num_channels}


def _rope_theta(rope_parameters) -> float:
    rope_parameters = rope_parameters or {}
    rope_type = rope_parameters.get("rope_type", _ROPE_TYPE)
    if rope_type != _ROPE_TYPE:
        raise ValueError(
            f"rope_parameters.rope_type is {rope_type!r}; EdgeTAM's memory attention uses {_ROPE_TYPE!r} RoPE"
        )
    return float(rope_parameters.get("rope_theta", _DEFAULT_ROPE_THETA))


class _ModelTypeWarningFilter(logging.Filter):
    """Drops transformers' note that a config.json of another EdgeTAM model type is being read."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("You are using a model of type") and "can yield errors" in message)


@contextlib.contextmanager
def without_model_type_warning():
    """While reading a config.json that `config_dict_for` translates (it refuses every other model)."""
    transformers_logger = logging.getLogger("transformers.configuration_utils")
    model_type_filter = _ModelTypeWarningFilter()
    transformers_logger.addFilter(model_type_filter)
    try:
        yield
    finally:
        transformers_logger.removeFilter(model_type_filter)


# ---------------------------------------------------------------------------- config.json, write


def disk_config_dict(config_dict: dict) -> dict:
    """Our config dict with the sub-configs in transformers' vocabulary (see the module docstring);
    unchanged when that vocabulary cannot express it (a trunk other than repvit_m1, a non-integer
    prompt-encoder scale)."""
    vision = config_dict.get("vision_config") or {}
    scale = (config_dict.get("prompt_encoder_config") or {}).get("scale", 1.0)
    if {key: vision.get(key) for key in REPVIT_M1_TRUNK} != REPVIT_M1_TRUNK or float(scale) != int(scale):
        logger.info("transformers' EdgeTam vocabulary cannot express this config; config.json keeps ours")
        return config_dict

    on_disk = dict(config_dict)
    trunk_fields = (*REPVIT_M1_TRUNK, "num_channels")  # described by the backbone config instead
    on_disk["vision_config"] = {key: value for key, value in vision.items() if key not in trunk_fields}
    on_disk["vision_config"].update(
        model_type=_TRANSFORMERS_VISION_MODEL_TYPE,
        backbone_config={
            "model_type": "timm_wrapper",
            "architecture": REPVIT_M1_ARCHITECTURE,
            "model_args": {"in_chans": vision.get("num_channels", 3), **_TIMM_FEATURE_ARGS},
            # transformers' TimmWrapperConfig reads its label count from these (unused by a
            # features-only trunk); without them it looks labels up in timm's ImageNet tables.
            "num_classes": 2,
            "label_names": ["LABEL_0", "LABEL_1"],
        },
    )
    # transformers' sub-config types: edgetam_prompt_encoder, edgetam_video_mask_decoder, ...
    prefix = TRANSFORMERS_MODEL_TYPES[config_dict["model_type"]]
    on_disk["prompt_encoder_config"] = dict(
        config_dict["prompt_encoder_config"], model_type=f"{prefix}_prompt_encoder", scale=int(scale)
    )
    on_disk["mask_decoder_config"] = dict(config_dict["mask_decoder_config"], model_type=f"{prefix}_mask_decoder")
    if "memory_attention_rope_theta" in on_disk:
        on_disk["rope_parameters"] = {"rope_type": _ROPE_TYPE, "rope_theta": on_disk.pop("memory_attention_rope_theta")}
    return on_disk


def write_config_json(config, json_file_path, use_diff: bool = True) -> None:
    """Writes config.json for both libraries (see the module docstring), with the `auto_map` that
    lets transformers load it with `trust_remote_code=True` (remote_code.py)."""
    config_dict = disk_config_dict(config.to_diff_dict() if use_diff else config.to_dict())
    config_dict["auto_map"] = auto_map(config.model_type)
    with open(json_file_path, "w", encoding="utf-8") as writer:
        writer.write(json.dumps(config_dict, indent=2, sort_keys=True) + "\n")
