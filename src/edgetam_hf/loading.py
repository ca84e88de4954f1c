"""Checkpoint formats on disk: our folders, transformers' EdgeTam folders, and Meta's `.pt`.

Our weight names are transformers' EdgeTam names, so the two libraries' folders differ only in
config.json (read and written by `config_format.py`). Ours keeps our model type (`edgetam_hf` / `edgetam_hf_video`: the Auto classes and
`pipeline` find our classes by it) but writes what transformers could not read otherwise in its
vocabulary: the three sub-configs (the trunk as a `timm_wrapper` backbone config naming
`repvit_m1`, transformers' sub-config types) and the memory attention's `rope_parameters`; every
other field has the same name in both. So `transformers.EdgeTamVideoModel.from_pretrained(our_folder)` loads it with no
missing or unexpected keys (it logs that the model types differ). A config that transformers'
format cannot express (a trunk other than repvit_m1, as in tiny test configs) is written in our
own vocabulary instead.

We read both vocabularies under either library's model types, and Meta's original checkpoint,
which `EdgeTamPreTrainedModel.from_pretrained` converts in memory through `weights.py`.

Loading is strict: a weight that is missing, unexpected or of the wrong shape is an error that
names it, because a partly random EdgeTAM still returns plausible-looking masks.
"""

import copy
import dataclasses
import os

import torch
from safetensors import SafetensorError
from transformers.configuration_utils import PreTrainedConfig

from .input_size import with_image_size
from .weights import fit_original_state_dict, read_original_checkpoint, weight_problems

# ---------------------------------------------------------------------------- weights


def is_original_checkpoint_path(path) -> bool:
    """A single file is taken for Meta's `{"model": state_dict}` checkpoint; folders and Hub ids are not."""
    return path is not None and os.path.isfile(path)


def load_pretrained(model_class, base_from_pretrained, pretrained_model_name_or_path, *model_args, **kwargs):
    """`EdgeTamPreTrainedModel.from_pretrained`: transformers' loading, plus Meta's `.pt` and strict checks."""
    return_loading_info = kwargs.pop("output_loading_info", False)
    # Shape mismatches are collected and refused below with their names (transformers would raise a
    # RuntimeError that points to its log); a caller who asks to ignore them keeps that choice.
    ignore_mismatched_sizes = kwargs.pop("ignore_mismatched_sizes", False)
    # Not a config field to pass through: several fields follow from it (input_size.py).
    image_size = kwargs.pop("image_size", None)
    source = pretrained_model_name_or_path
    config = kwargs.get("config")
    if isinstance(config, PreTrainedConfig) and type(config) is not model_class.config_class:
        # e.g. transformers' AutoModelForMaskGeneration handing a video folder's config to the image model
        kwargs["config"] = model_class.config_class.from_dict(config.to_dict())
    if is_original_checkpoint_path(pretrained_model_name_or_path):
        config = _with_overrides(_config_instance(model_class, kwargs.pop("config", None)), kwargs)
        if image_size is not None:
            config = with_image_size(config, image_size)
        kwargs["state_dict"] = original_state_dict_for(model_class, config, pretrained_model_name_or_path)
        kwargs["config"] = config
        pretrained_model_name_or_path = None
    elif image_size is not None:
        folder_config = _folder_config(model_class, kwargs.get("config"), pretrained_model_name_or_path, kwargs)
        kwargs["config"] = with_image_size(folder_config, image_size)
    try:
        model, loading_info = base_from_pretrained(
            pretrained_model_name_or_path, *model_args, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
        )
    except SafetensorError as error:  # its message names neither the file nor the likely cause
        raise ValueError(
            f"the weights of {source} are not a readable safetensors file (truncated?): {error}"
        ) from error
    check_loading_info(model, loading_info, source, ignore_mismatched_sizes)
    own_aligned_memory(model)
    return (model, loading_info) if return_loading_info else model


# What PyTorch's CPU allocator guarantees; safetensors hands out views of the file at any offset.
TENSOR_ALIGNMENT_BYTES = 64


def own_aligned_memory(model: torch.nn.Module) -> None:
    """Copies every parameter and buffer that lies at an unaligned address into memory of its own.

    Weights read from safetensors are views into the file at whatever offset the header left
    them (data_ptr % 64 of 52, 4, 36, ...), and some CPUs' convolution and matmul kernels round
    differently for such buffers: without this, one machine gives a model loaded from a folder
    outputs ~3e-5 (relative) away from the same weights built in memory. After it, a model computes
    the same wherever its weights came from.
    """
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.data_ptr() % TENSOR_ALIGNMENT_BYTES:
                tensor.data = tensor.data.clone()


def _config_instance(model_class, config):
    if config is None:
        return model_class.config_class()
    if isinstance(config, (str, os.PathLike)):
        return model_class.config_class.from_pretrained(config)
    return config


# from_pretrained's arguments that say where a folder's config.json comes from.
_CONFIG_SOURCE_ARGUMENTS = ("cache_dir", "force_download", "local_files_only", "proxies", "revision", "subfolder", "token")


def _folder_config(model_class, config, pretrained_model_name_or_path, kwargs: dict):
    """The config a folder or Hub id would load with (or the one given), read here so that
    `image_size` can change it before the model is built."""
    if isinstance(config, PreTrainedConfig):
        return config
    source_arguments = {key: kwargs[key] for key in _CONFIG_SOURCE_ARGUMENTS if key in kwargs}
    return model_class.config_class.from_pretrained(config or pretrained_model_name_or_path, **source_arguments)


def _with_overrides(config, kwargs: dict):
    """`config` with the keyword arguments that name its own fields (`fill_hole_area=0`, ...) taken
    out of `kwargs` and applied, as transformers applies them when it reads a folder's config.json."""
    own_fields = {field.name for field in dataclasses.fields(config)} - {
        field.name for field in dataclasses.fields(PreTrainedConfig)
    }
    overrides = {key: kwargs.pop(key) for key in list(kwargs) if key in own_fields}
    if not overrides:
        return config
    config = copy.deepcopy(config)  # the caller's config object stays as it was
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def original_state_dict_for(model_class, config, path) -> dict[str, torch.Tensor]:
    """Meta's checkpoint at `path`, mapped to our names and checked against `model_class(config)`."""
    with torch.device("meta"):  # only the names and shapes are needed; no memory, no init time
        skeleton = model_class(config)
    return fit_original_state_dict(skeleton, read_original_checkpoint(path))


def check_loading_info(model, loading_info: dict, source, ignore_mismatched_sizes: bool = False) -> None:
    """Raises a ValueError naming the weights transformers found missing, unexpected or mis-shaped."""
    mismatched = [] if ignore_mismatched_sizes else sorted(loading_info["mismatched_keys"])
    problems = weight_problems(
        sorted(loading_info["missing_keys"]),
        sorted(loading_info["unexpected_keys"]),
        [f"{key}: checkpoint {tuple(saved)} vs model {tuple(built)}" for key, saved, built in mismatched],
    )
    if problems:
        raise ValueError(f"the weights of {source} do not fit {type(model).__name__} built from its config; {problems}")
