"""Typed configurations for EdgeTAM.

Every default reproduces the released EdgeTAM checkpoint (`edgetam.pt`, configs/edgetam.yaml of
facebookresearch/EdgeTAM): a RepViT-M1 trunk with an FPN neck, the SAM 2 prompt encoder and mask
decoder, and for video the memory encoder, the 2D spatial perceiver and RoPE memory attention.

The field names mirror transformers' `EdgeTamConfig` / `EdgeTamVideoConfig` so that a config.json
written by transformers can be read field by field (see `config_format.py` for the translation of the
parts that differ: transformers describes the trunk as a `timm_wrapper` backbone config, and
memory attention's RoPE as `rope_parameters`).
"""

import dataclasses

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig

from .config_format import config_dict_for, sub_config_dict_for, without_model_type_warning, write_config_json
from .remote_code import WritesItsOwnAutoMap, write_classes_file


class _SubConfig(PreTrainedConfig):
    """A sub-config read on its own (`EdgeTamVisionConfig.from_pretrained(folder)` takes its part
    of config.json) reads either library's vocabulary, as the whole config does."""

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        return super().from_dict(sub_config_dict_for(cls.base_config_key, config_dict), **kwargs)


@strict
class EdgeTamVisionConfig(_SubConfig):
    """RepViT-M1 trunk + FPN neck (original: `ImageEncoder(TimmBackbone, FpnNeck)`).

    `backbone_embed_dims` / `backbone_depths` describe the trunk stages from high to low
    resolution (timm's `repvit_m1`); `backbone_channel_list` is the same list read from low to high
    resolution, the order in which the FPN neck consumes them.
    """

    model_type = "edgetam_hf_vision"
    base_config_key = "vision_config"

    num_channels: int = 3
    backbone_embed_dims: list[int] | None = None
    backbone_depths: list[int] | None = None
    backbone_mlp_ratio: float = 2.0
    backbone_kernel_size: int = 3
    backbone_channel_list: list[int] | None = None
    backbone_feature_sizes: list | None = None
    fpn_hidden_size: int = 256
    fpn_kernel_size: int = 1
    fpn_stride: int = 1
    fpn_padding: int = 0
    fpn_top_down_levels: list[int] | None = None
    num_feature_levels: int = 3
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-6
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.backbone_embed_dims is None:
            self.backbone_embed_dims = [48, 96, 192, 384]
        if self.backbone_depths is None:
            self.backbone_depths = [2, 2, 14, 2]
        if self.backbone_channel_list is None:
            self.backbone_channel_list = list(reversed(self.backbone_embed_dims))
        if self.backbone_feature_sizes is None:
            self.backbone_feature_sizes = [[256, 256], [128, 128], [64, 64]]
        if self.fpn_top_down_levels is None:
            self.fpn_top_down_levels = [2, 3]
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        if len(self.backbone_embed_dims) != len(self.backbone_depths):
            raise ValueError(
                f"backbone_embed_dims ({self.backbone_embed_dims}) and backbone_depths "
                f"({self.backbone_depths}) must have one entry per trunk stage"
            )
        if list(self.backbone_channel_list) != list(reversed(self.backbone_embed_dims)):
            raise ValueError(
                f"backbone_channel_list {self.backbone_channel_list} must be backbone_embed_dims "
                f"{self.backbone_embed_dims} in reverse order"
            )


@strict
class EdgeTamPromptEncoderConfig(_SubConfig):
    """SAM 2 prompt encoder (original: `sam2.modeling.sam.prompt_encoder.PromptEncoder`)."""

    model_type = "edgetam_hf_prompt_encoder"
    base_config_key = "prompt_encoder_config"

    hidden_size: int = 256
    image_size: int = 1024
    patch_size: int = 16
    mask_input_channels: int = 16
    num_point_embeddings: int = 4
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-6
    # transformers types it int (its default 1): both are read, and kept as a float.
    scale: int | float = 1.0

    def __post_init__(self, **kwargs):
        self.scale = float(self.scale)
        super().__post_init__(**kwargs)


@strict
class EdgeTamMaskDecoderConfig(_SubConfig):
    """SAM 2 two-way transformer mask decoder (original: `sam2.modeling.sam.mask_decoder.MaskDecoder`)."""

    model_type = "edgetam_hf_mask_decoder"
    base_config_key = "mask_decoder_config"

    hidden_size: int = 256
    hidden_act: str = "gelu"
    mlp_dim: int = 2048
    num_hidden_layers: int = 2
    num_attention_heads: int = 8
    attention_downsample_rate: int = 2
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    dynamic_multimask_via_stability: bool = True
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98


@strict
class EdgeTamConfig(WritesItsOwnAutoMap, PreTrainedConfig):
    """The image model: vision encoder, prompt encoder and mask decoder."""

    model_type = "edgetam_hf"
    sub_configs = {
        "vision_config": EdgeTamVisionConfig,
        "prompt_encoder_config": EdgeTamPromptEncoderConfig,
        "mask_decoder_config": EdgeTamMaskDecoderConfig,
    }

    vision_config: dict | EdgeTamVisionConfig | None = None
    prompt_encoder_config: dict | EdgeTamPromptEncoderConfig | None = None
    mask_decoder_config: dict | EdgeTamMaskDecoderConfig | None = None
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        self.vision_config = _as_config(EdgeTamVisionConfig, self.vision_config)
        self.prompt_encoder_config = _as_config(EdgeTamPromptEncoderConfig, self.prompt_encoder_config)
        self.mask_decoder_config = _as_config(EdgeTamMaskDecoderConfig, self.mask_decoder_config)
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        # Also reads transformers' EdgeTam config.json (config_format.py translates it), and an image
        # config reads a video folder, as in transformers. Translating here, not when the file is
        # read, serves AutoConfig too, which reads the file itself and then calls from_dict.
        # `image_size` sets every field that follows from it (input_size.py), not the video config's
        # own field alone: from_pretrained and transformers' Auto classes pass the model's arguments here.
        image_size = kwargs.pop("image_size", None)
        loaded = super().from_dict(_fit_to_class(cls, config_dict_for(cls, config_dict)), **kwargs)
        if image_size is None:
            return loaded
        from .input_size import with_image_size  # it imports this module

        if isinstance(loaded, tuple):  # return_unused_kwargs=True
            return (with_image_size(loaded[0], image_size), *loaded[1:])
        return with_image_size(loaded, image_size)

    @classmethod
    def from_json_file(cls, json_file):
        # transformers' version builds the class from the raw dict, past the translation in from_dict.
        return cls.from_dict(cls._dict_from_json_file(json_file))

    def to_json_file(self, json_file_path, use_diff: bool = True):
        # Our model type, with the sub-configs in transformers' vocabulary where it can express
        # them, so that transformers' own EdgeTam classes load our folders too (see config_format.py).
        write_config_json(self, json_file_path, use_diff)

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        # config.json's auto_map names the classes file written beside it (remote_code.py).
        super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        write_classes_file(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        # transformers warns "can yield errors" when the folder's model type is not this class's;
        # from_dict translates every EdgeTAM type (an image model reading a video folder keeps the
        # image fields, as transformers' own EdgeTamModel does), so the warning would be noise.
        with without_model_type_warning():
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)


@strict
class EdgeTamVideoConfig(EdgeTamConfig):
    """The video model: the image model plus memory encoder, spatial perceiver and memory attention.

    Field names follow transformers' `EdgeTamVideoConfig`; defaults are configs/edgetam.yaml.
    """

    model_type = "edgetam_hf_video"

    num_maskmem: int = 7
    image_size: int = 1024
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    # EdgeTAM's checkpoint has neither an occlusion embedding nor a temporal projection of the object
    # pointers (transformers' defaults enable both, which the released weights cannot fill).
    enable_occlusion_spatial_embedding: bool = False
    multimask_output_in_sam: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    multimask_output_for_tracking: bool = True
    max_object_pointers_in_encoder: int = 16
    max_cond_frame_num: int = -1
    enable_temporal_pos_encoding_for_object_pointers: bool = False
    # Video predictor post-processing (`build_sam2_video_predictor` defaults): background regions
    # of a predicted low-resolution mask with at most this many pixels become foreground; 0 turns
    # it off. Not a transformers field.
    fill_hole_area: int = 8
    # memory attention (RoPE self-attention on the frame, cross-attention to memories)
    memory_attention_hidden_size: int = 256
    memory_attention_num_layers: int = 2
    memory_attention_num_attention_heads: int = 1
    memory_attention_downsample_rate: int = 1
    memory_attention_mlp_hidden_size: int = 2048
    memory_attention_mlp_hidden_act: str = "relu"
    memory_attention_dropout: float = 0.1
    memory_attention_rope_feat_sizes: list[int] | None = None
    memory_attention_rope_k_sizes: list[int] | None = None
    memory_attention_rope_dropout: float = 0.1
    memory_attention_rope_theta: float = 10000.0
    # 2D spatial perceiver
    perceiver_resampler_num_latents: int = 256
    perceiver_resampler_num_latents_2d: int = 256
    perceiver_resampler_hidden_size: int = 64
    perceiver_resampler_mlp_intermediate_size: int = 256
    perceiver_resampler_num_attention_heads: int = 1
    perceiver_resampler_attention_head_dim: int = 64
    perceiver_resampler_num_layers: int = 2
    perceiver_resampler_hidden_dropout: float = 0.0
    perceiver_resampler_attention_dropout: float = 0.0
    # memory encoder
    memory_encoder_hidden_size: int = 256
    memory_encoder_output_channels: int = 64
    mask_downsampler_embed_dim: int = 256
    mask_downsampler_kernel_size: int = 3
    mask_downsampler_stride: int = 2
    mask_downsampler_padding: int = 1
    mask_downsampler_total_stride: int = 16
    mask_downsampler_hidden_act: str = "gelu"
    memory_fuser_num_layers: int = 2
    memory_fuser_embed_dim: int = 256
    memory_fuser_intermediate_dim: int = 1024
    memory_fuser_kernel_size: int = 7
    memory_fuser_padding: int = 3
    memory_fuser_layer_scale_init_value: float = 1e-6
    memory_fuser_hidden_act: str = "gelu"

    def __post_init__(self, **kwargs):
        if self.memory_attention_rope_feat_sizes is None:
            self.memory_attention_rope_feat_sizes = [64, 64]
        if self.memory_attention_rope_k_sizes is None:
            self.memory_attention_rope_k_sizes = [16, 16]
        super().__post_init__(**kwargs)


def _as_config(config_class, value):
    """Accept a sub-config given as None (defaults), a dict (e.g. read from JSON) or an instance."""
    if value is None:
        return config_class()
    if isinstance(value, dict):
        return config_class(**value)
    if isinstance(value, config_class):
        return value
    raise ValueError(f"expected a {config_class.__name__} or a dict for it, got {type(value).__name__}")


def _fit_to_class(config_class, config_dict: dict) -> dict:
    """Drops the fields that only the video config has when the image config reads a video folder
    (as transformers' `EdgeTamModel` does with `facebook/EdgeTAM`), and the `auto_map`."""
    own_fields = {field.name for field in dataclasses.fields(config_class)}
    video_only = {field.name for field in dataclasses.fields(EdgeTamVideoConfig)} - own_fields
    # auto_map points transformers at our classes; this is one, and writing adds it back.
    fitted = {key: value for key, value in config_dict.items() if key not in video_only and key != "auto_map"}
    fitted["model_type"] = config_class.model_type
    return fitted
