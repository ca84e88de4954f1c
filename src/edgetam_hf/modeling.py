"""The PreTrainedModel classes: the base both models share (with the image path's parts and
steps) and the image model `EdgeTamModel`."""

import logging
import os
from collections.abc import Sequence

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils.generic import can_return_tuple

from .configuration import EdgeTamConfig
from .conventions import LABEL_PADDING
from .input_size import check_frame_size
from .layers import compose_pointwise_convs, pointwise_conv
from .mask_decoder import EdgeTamMaskDecoder, EdgeTamMaskDecoderOutput
from .model_inputs import check_in_input_frame, check_pixel_values, checked_prompts, mask_prompt
from .outputs import EdgeTamImageSegmentationOutput
from .position_encoding import RandomFourierPositionEncoding
from .precision import computing_dtype, warn_if_emulated
from .prompt_encoder import EdgeTamPromptEncoder
from .remote_code import WritesItsOwnAutoMap
from .video.types import FrameFeatures
from .vision_encoder import EdgeTamVisionEncoder

logger = logging.getLogger(__name__)


class EdgeTamPreTrainedModel(WritesItsOwnAutoMap, PreTrainedModel):
    """The base of the image and the video model: transformers' loading and saving, and the image
    path both run (the original's `SAM2Base` without memory): the RepViT-M1 + FPN image encoder,
    the prompt encoder and the mask decoder, built here once with the weight names of
    transformers' checkpoints, and the steps on them that both models take.
    """

    config_class = EdgeTamConfig
    base_model_prefix = "edgetam"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _supports_sdpa = True

    def __init__(self, config: EdgeTamConfig):
        super().__init__(config)
        self.vision_encoder = EdgeTamVisionEncoder(config.vision_config)
        self.prompt_encoder = EdgeTamPromptEncoder(config.prompt_encoder_config)
        self.mask_decoder = EdgeTamMaskDecoder(config.mask_decoder_config)
        # The original has one frequency matrix for prompts and the image grid; transformers'
        # checkpoints store two copies (this one encodes the grid), and so do ours, so that each
        # loads into the other. Converting an original checkpoint fills both with its one matrix.
        self.shared_image_embedding = RandomFourierPositionEncoding(
            config.prompt_encoder_config.hidden_size, scale=config.prompt_encoder_config.scale
        )
        # Added to the lowest-resolution features of a frame that has no memory (every image).
        self.no_memory_embedding = nn.Parameter(torch.zeros(1, 1, config.vision_config.fpn_hidden_size))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """transformers' `from_pretrained` (dtype, device_map, Hub ids, ...) that also accepts:

        - folders saved by transformers' built-in EdgeTam classes (their config.json is translated);
        - the path of Meta's original checkpoint file (`edgetam.pt`), converted in memory with the
          config given as `config=` or the defaults (the released model);
        - `image_size=512`: the side of the square input, for any of these sources (no weight
          depends on it; see `input_size.py` for the sizes a model takes).

        Loading is strict: any missing, unexpected or wrongly shaped weight raises a ValueError
        that names it (a video checkpoint's memory weights are not needed by the image model).
        """
        from .loading import load_pretrained

        return load_pretrained(cls, super().from_pretrained, pretrained_model_name_or_path, *model_args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)
        # The weights file is created private to the user (0600), unlike the config next to it; give
        # it config.json's mode (from the umask) so that a shared or served folder is readable throughout.
        config_path = os.path.join(save_directory, "config.json")
        if not os.path.isfile(config_path):  # save_config=False
            return
        config_mode = os.stat(config_path).st_mode & 0o777
        for name in os.listdir(save_directory):
            if name.endswith(".safetensors") or name.endswith(".safetensors.index.json"):
                os.chmod(os.path.join(save_directory, name), config_mode)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the model computes in: that of its weights (`model.to(torch.bfloat16)`).
        Inputs are cast to it."""
        return self.no_memory_embedding.dtype

    def get_image_wide_positional_embeddings(self) -> torch.Tensor:
        """The encoding of the image-embedding grid: (1, hidden_size, 64, 64)."""
        return self.shared_image_embedding.grid(*self.prompt_encoder.image_embedding_size)[None]

    def _frame_features(self, pixel_values: torch.Tensor) -> FrameFeatures:
        """(batch, 3, 1024, 1024) normalised pixels -> the image encoder's features, the two
        high-resolution levels projected for the mask decoder (original: `forward_image`)."""
        return self._trunk_and_frame_features(pixel_values)[1]

    def _trunk_and_frame_features(self, pixel_values: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], FrameFeatures]:
        """`_frame_features`, with the trunk's stage outputs before them (high to low resolution),
        which `output_hidden_states=True` returns."""
        check_frame_size(pixel_values, self.config.prompt_encoder_config.image_size)
        if not torch.compiler.is_compiling():  # every image and frame passes here: the warning's one place
            device = self.no_memory_embedding.device
            warn_if_emulated(computing_dtype(self.compute_dtype, device), device)
        # The processor's float32 pixels serve a bfloat16 / float16 model too.
        pixel_values = pixel_values.to(self.compute_dtype)
        trunk_features = self.vision_encoder.backbone(pixel_values)
        projections = self._high_resolution_projections()
        if projections is None:
            fpn_features, fpn_positions = self.vision_encoder.neck(trunk_features)
            high_resolution = self.mask_decoder.project_high_resolution_features(fpn_features[:2])
            return trunk_features, FrameFeatures(tuple(high_resolution), fpn_features[-1], fpn_positions[-1])
        vision_features, vision_position = self.vision_encoder.neck.lowest_kept_level(trunk_features)
        # Composed in float32: cast to the maps' dtype.
        high_resolution = tuple(
            pointwise_conv(maps, weight.to(maps.dtype), bias.to(maps.dtype))
            for maps, (weight, bias) in zip(trunk_features, projections)
        )
        return trunk_features, FrameFeatures(high_resolution, vision_features, vision_position)

    def _high_resolution_projections(self) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """For the two highest-resolution levels, (weight, bias) of one 1x1 conv from the trunk's
        map straight to the mask decoder's projection (the FPN's lateral conv, then `conv_s0` /
        `conv_s1`); None when a level is more than its lateral conv.

        The same math in a fraction of the time: the 256-channel FPN maps these levels would
        pass through are the largest tensors of a frame (64 MiB at 256x256). Composed on every
        call (microseconds), so nothing derived from the weights is kept."""
        neck = self.vision_encoder.neck
        if neck.num_feature_levels <= 2:  # the image embedding would be one of these levels
            return None
        projections = []
        for level, projection in enumerate((self.mask_decoder.conv_s0, self.mask_decoder.conv_s1)):
            lateral = neck.lateral_conv(level)
            composed = None if lateral is None else compose_pointwise_convs(lateral, projection)
            if composed is None:
                return None
            projections.append(composed)
        return projections

    def _add_no_memory_embedding(self, vision_features: torch.Tensor) -> torch.Tensor:
        """(batch, 256, 64, 64) features of a frame without memory, as the mask decoder reads
        them (original: `directly_add_no_mem_embed`)."""
        return vision_features + self.no_memory_embedding.view(1, -1, 1, 1)

    def _decode_prompts(
        self,
        image_embedding: torch.Tensor,
        high_resolution_features: Sequence[torch.Tensor],
        input_points: torch.Tensor | None,
        input_labels: torch.Tensor | None,
        input_boxes: torch.Tensor | None,
        input_masks: torch.Tensor | None,
        multimask_output: bool,
    ) -> EdgeTamMaskDecoderOutput:
        """Prompt encoder + mask decoder on `image_embedding` (batch, 256, 64, 64); the prompts
        are the prompt encoder's (original: `_forward_sam_heads` / `_predict` up to the masks)."""
        sparse_embeddings, dense_embeddings = self.prompt_encoder(
            input_points=input_points, input_labels=input_labels, input_boxes=input_boxes, input_masks=input_masks
        )
        return self.mask_decoder(
            image_embeddings=image_embedding,
            image_positional_embeddings=self.get_image_wide_positional_embeddings(),
            sparse_prompt_embeddings=sparse_embeddings,
            dense_prompt_embeddings=dense_embeddings,
            multimask_output=multimask_output,
            high_resolution_features=high_resolution_features,
        )

    def set_attn_implementation(self, attn_implementation):
        super().set_attn_implementation(attn_implementation)
        self._propagate_attn_implementation()

    def post_init(self):
        super().post_init()
        self._propagate_attn_implementation()
        # The grid's copy of the prompt encoder's frequency matrix starts equal to it.
        with torch.no_grad():
            self.shared_image_embedding.positional_embedding.copy_(self.prompt_encoder.shared_embedding.positional_embedding)

    def _propagate_attn_implementation(self):
        """Our attention modules read `attn_implementation` ("sdpa" or "eager") at call time."""
        implementation = self.config._attn_implementation or "sdpa"
        for module in self.modules():
            if hasattr(module, "attn_implementation"):
                module.attn_implementation = implementation

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        super()._init_weights(module)
        if isinstance(module, RandomFourierPositionEncoding):
            init.normal_(module.positional_embedding, std=module.scale)
        elif isinstance(module, EdgeTamPreTrainedModel):
            init.trunc_normal_(module.no_memory_embedding, std=0.02)


class EdgeTamModel(EdgeTamPreTrainedModel):
    """Segments objects in images from clicks, boxes and mask prompts.

    Ports the image path of the original `SAM2Base` as `SAM2ImagePredictor` drives it: the
    RepViT-M1 + FPN image encoder, the prompt encoder and the mask decoder. Its call signature is
    transformers' `Sam2Model`'s; its state-dict names are transformers' `EdgeTamModel`'s.
    """

    # A video checkpoint serves the image model too: its memory parts are not needed here.
    _keys_to_ignore_on_load_unexpected = [
        r"^memory_attention\.",
        r"^memory_encoder\.",
        r"^spatial_perceiver\.",
        r"^mask_downsample\.",
        r"^object_pointer_proj\.",
        r"^temporal_positional_encoding_projection_layer\.",
        r"^memory_temporal_positional_encoding$",
        r"^no_memory_positional_encoding$",
        r"^no_object_pointer$",
        r"^occlusion_spatial_embedding_parameter$",
    ]

    # The loss averages over objects itself; Trainer must not pass `num_items_in_batch` (tokens).
    accepts_loss_kwargs = False

    def __init__(self, config: EdgeTamConfig):
        super().__init__(config)
        self.post_init()

    @torch.no_grad()
    def get_image_embeddings(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Encodes images once for any number of prompts (without gradients; `forward` keeps them).

        Returns `[(batch, 32, 256, 256), (batch, 64, 128, 128), (batch, 256, 64, 64)]`: the two
        high-resolution levels projected for the mask decoder, and the image embedding with the
        no-memory embedding added, as the original image predictor's `set_image` stores them.
        """
        return self._image_embeddings(pixel_values)[0]

    @torch.no_grad()
    def get_prompt_embeddings(
        self,
        input_points: torch.Tensor | None = None,
        input_labels: torch.Tensor | None = None,
        input_boxes: torch.Tensor | None = None,
        input_masks: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompt encoder's `(sparse, dense)` embeddings of prompts as `forward` takes them
        (see `EdgeTamPromptEncoder.forward` for the shapes)."""
        return self.prompt_encoder(
            input_points=input_points, input_labels=input_labels, input_boxes=input_boxes, input_masks=input_masks
        )

    def _image_embeddings(self, pixel_values: torch.Tensor) -> tuple[list[torch.Tensor], tuple[torch.Tensor, ...]]:
        """`get_image_embeddings`'s list, and the trunk's stage outputs."""
        check_pixel_values(pixel_values, self.config.prompt_encoder_config.image_size)
        trunk_features, features = self._trunk_and_frame_features(pixel_values)
        embeddings = [*features.high_resolution_features, self._add_no_memory_embedding(features.vision_features)]
        return embeddings, tuple(trunk_features)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_points: torch.Tensor | None = None,
        input_labels: torch.Tensor | None = None,
        input_boxes: torch.Tensor | None = None,
        input_masks: torch.Tensor | None = None,
        image_embeddings: list[torch.Tensor] | None = None,
        multimask_output: bool = True,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        attention_similarity: torch.Tensor | None = None,
        target_embedding: torch.Tensor | None = None,
        **kwargs,
    ) -> EdgeTamImageSegmentationOutput:
        """Predicts masks for every object of every image.

        Without any prompt, each image gets one object decoded from a lone padding point (the
        original's `_forward_sam_heads` without points, and transformers' `Sam2Model`).
        `return_dict=False` returns `to_tuple()` of the output, as in transformers.

        Args:
            pixel_values: `(batch, 3, 1024, 1024)` from `EdgeTamProcessor`; or give `image_embeddings`.
            input_points: `(batch, num_objects, num_points, 2)` (x, y) in the 1024x1024 input frame, as
                the processor returns them from image pixels; coordinates outside it are refused.
            input_labels: `(batch, num_objects, num_points)`: 1 foreground, 0 background, -1 padding.
                Defaults to all 1 when points are given.
            input_boxes: `(batch, num_objects, 4)` as (x0, y0, x1, y1) in the 1024x1024 input frame (the
                processor's output, as for points).
            input_masks: `(batch, num_objects, 256, 256)` low-resolution mask logits (e.g. an earlier
                `pred_masks` entry) as a dense prompt.
            image_embeddings: the list returned by `get_image_embeddings`.
            multimask_output: three masks per object (True) or the single best one (False; with
                the original's fallback to the most stable of the three when it is unstable).
            labels: `(batch, num_objects, height, width)` binary ground-truth masks at the size of
                `pixel_values` (`EdgeTamProcessor(..., labels=masks)` builds them): the output then
                holds the training loss and its terms (see `edgetam_hf.losses`).
            output_hidden_states: return the image encoder's trunk stages as `vision_hidden_states`
                (default: `config.output_hidden_states`).
            output_attentions: accepted for transformers' signature; no attention weights are
                returned (`vision_attentions` / `mask_decoder_attentions` stay None, as the trunk of
                transformers' EdgeTam has none either; the decoder runs fused attention kernels).
            attention_similarity, target_embedding: transformers' PerSAM personalisation inputs;
                refused with a ValueError (docs/differences.md): EdgeTAM was not trained with them.
        """
        kwargs.pop("original_sizes", None)
        for name, value in (("attention_similarity", attention_similarity), ("target_embedding", target_embedding)):
            if value is not None:
                raise ValueError(f"{name} (PerSAM personalisation) is not supported by edgetam-hf's EdgeTamModel")
        if kwargs:
            raise TypeError(f"EdgeTamModel.forward got unexpected arguments: {sorted(kwargs)}")
        if (pixel_values is None) == (image_embeddings is None):
            raise ValueError("pass exactly one of pixel_values or image_embeddings")
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        vision_hidden_states = None
        if image_embeddings is None:
            image_embeddings, trunk_features = self._image_embeddings(pixel_values)
            vision_hidden_states = trunk_features if output_hidden_states else None
        else:
            image_embeddings = [embedding.to(self.compute_dtype) for embedding in image_embeddings]
        batch_size = image_embeddings[-1].shape[0]
        if input_points is None and input_labels is None and input_boxes is None and input_masks is None:
            input_points = image_embeddings[-1].new_zeros(batch_size, 1, 1, 2)
            input_labels = torch.full((batch_size, 1, 1), LABEL_PADDING, device=input_points.device)
        points, point_labels, num_objects = checked_prompts(input_points, input_labels, input_boxes, input_masks, batch_size)
        check_in_input_frame(points, point_labels, input_boxes, self.config.prompt_encoder_config.image_size)
        mask_input_size = self.prompt_encoder.mask_input_size
        dense_mask_prompt = mask_prompt(input_masks, batch_size, num_objects, mask_input_size, self.compute_dtype)

        decoder_output = self._decode_prompts(
            image_embeddings[-1], image_embeddings[:-1], points, point_labels, input_boxes, dense_mask_prompt, multimask_output
        )
        loss_terms = {}
        if labels is not None:
            from .losses import image_model_loss

            loss = image_model_loss(
                decoder_output.mask_logits, decoder_output.iou_scores, decoder_output.object_score_logits, labels
            )
            loss_terms = {"loss": loss.total, "focal_loss": loss.focal, "dice_loss": loss.dice}
            loss_terms.update(iou_loss=loss.iou, object_score_loss=loss.object_score)
        return EdgeTamImageSegmentationOutput(
            pred_masks=decoder_output.mask_logits,
            iou_scores=decoder_output.iou_scores,
            object_score_logits=decoder_output.object_score_logits,
            image_embeddings=image_embeddings,
            vision_hidden_states=vision_hidden_states,
            **loss_terms,
        )
