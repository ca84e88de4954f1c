"""The video model `EdgeTamVideoModel`: the image path of `EdgeTamPreTrainedModel` (the parts the
image model has) plus the memory encoder, the 2D spatial perceiver and the memory attention.

The model's methods are stateless steps on one frame (encode it, segment it with or without
memory, encode a memory of the result); `video.propagation` drives them over the frames of an
`EdgeTamVideoInferenceSession`, which holds every piece of state.
"""

import itertools
import weakref
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook
from transformers import initialization as init

from .configuration import EdgeTamVideoConfig
from .input_size import check_sizes_agree
from .layers import MLP, ChangeAwareModule, ProjectedAttention
from .memory_attention import EdgeTamMemoryAttention
from .memory_encoder import EdgeTamMemoryEncoder
from .modeling import EdgeTamPreTrainedModel
from .outputs import EdgeTamVideoSegmentationOutput
from .perceiver import EdgeTamPerceiverResampler
from .prompt_encoder import LABEL_PADDING
from .video import propagation
from .tracking.records import NO_OBJECT_SCORE
from .video.types import EncodedMemory, FrameFeatures, FramePrediction, MemoryContext

# Numbers the states of every video model's weights and settings (see `EdgeTamVideoModel.state_revision`).
_model_revisions = itertools.count()
# The video models alive, told after any optimizer step that changed their parameters.
_live_models: "weakref.WeakSet[EdgeTamVideoModel]" = weakref.WeakSet()
_optimizer_hook = None


def _watch_optimizer_steps(model: "EdgeTamVideoModel") -> None:
    """An optimizer changes weights in place without telling the model: one global hook (added
    with the first model) gives every model whose parameters it stepped a new revision."""
    global _optimizer_hook
    _live_models.add(model)
    if _optimizer_hook is None:
        _optimizer_hook = register_optimizer_step_post_hook(_after_optimizer_step)


def _after_optimizer_step(optimizer, args, kwargs) -> None:
    stepped = {id(parameter) for group in optimizer.param_groups for parameter in group["params"]}
    for model in list(_live_models):
        if any(id(parameter) in stepped for parameter in model.parameters()):
            model.weights_changed()

# A binary mask prompt used as the output becomes logits of -10 / +10 (sigmoid ~ 0 / ~ 1).
MASK_AS_LOGITS_SCALE = 20.0
MASK_AS_LOGITS_BIAS = -10.0


class EdgeTamVideoModel(ChangeAwareModule, EdgeTamPreTrainedModel):
    """Tracks objects through a video (original: `sam2.modeling.sam2_base.SAM2Base` as
    `SAM2VideoPredictor` drives it, with EdgeTAM's 2D spatial perceiver).

    Call it as transformers' `Sam2VideoModel`: `model(inference_session, frame_idx=...)` (or
    `frame=...` when streaming) and `propagate_in_video_iterator(inference_session, ...)`; what
    those calls compute is the original video predictor's (see `video.propagation`). State-dict
    names are transformers' `EdgeTamVideoModel`'s.
    """

    config_class = EdgeTamVideoConfig
    main_input_name = "pixel_values"
    input_modalities = ("video",)

    def __init__(self, config: EdgeTamVideoConfig):
        check_sizes_agree(config)
        super().__init__(config)
        hidden_size = config.vision_config.fpn_hidden_size
        memory_dim = config.memory_encoder_output_channels
        self.memory_attention = EdgeTamMemoryAttention(config)
        self.memory_encoder = EdgeTamMemoryEncoder(config)
        self.spatial_perceiver = EdgeTamPerceiverResampler(config)
        self.no_memory_positional_encoding = nn.Parameter(torch.zeros(1, 1, hidden_size))
        # Temporal encoding of the memory frames: index num_maskmem - 1 - t_pos for t_pos 0..6.
        self.memory_temporal_positional_encoding = nn.Parameter(torch.zeros(config.num_maskmem, 1, 1, memory_dim))
        self.no_object_pointer = nn.Parameter(torch.zeros(1, hidden_size))
        # Brings a 1024x1024 mask prompt down to the 256x256 logits grid of the mask decoder.
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.object_pointer_proj = MLP(hidden_size, hidden_size, hidden_size, num_layers=3)
        if config.enable_temporal_pos_encoding_for_object_pointers:
            self.temporal_positional_encoding_projection_layer = nn.Linear(hidden_size, memory_dim)
        else:
            self.temporal_positional_encoding_projection_layer = nn.Identity()
        self.occlusion_spatial_embedding_parameter = None
        if config.enable_occlusion_spatial_embedding:
            self.occlusion_spatial_embedding_parameter = nn.Parameter(torch.zeros(1, memory_dim))
        self.post_init()
        self.weights_changed()
        _watch_optimizer_steps(self)

    # ------------------------------------------------------------------ what results depend on

    # `state_revision` names the model's weights and settings: a tracked result records the revision it
    # was computed with and is reused only under the same one. It changes, to a number no model
    # had before, whenever the weights may change (see `ChangeAwareModule`), after an optimizer
    # step over them and on a change of attention kernel; after editing weights in place by
    # hand, call `weights_changed()`.

    def weights_changed(self) -> None:
        self.state_revision = next(_model_revisions)
        # Parts that keep something derived from their weights (the folded trunk) drop it too.
        for module in self.modules():
            if module is not self and isinstance(module, ChangeAwareModule):
                module.weights_changed()

    def set_attn_implementation(self, attn_implementation):
        self.weights_changed()
        return super().set_attn_implementation(attn_implementation)

    def use_original_attention_kernels(self, enabled: bool = True) -> "EdgeTamVideoModel":
        """On CPU, run the memory attention with PyTorch's math kernel, as the original does (it
        forces it): that step bit-exact with the original's but ~1.5x slower. The default kernel
        (flash) stays within ~1e-6 of it per layer. (The image encoder's 1x1 convs run as matrix
        products either way, ~1e-7 relative from the original's convs.) Returns the model."""
        for module in self.memory_attention.modules():
            if isinstance(module, ProjectedAttention):
                module.math_kernel_on_cpu = enabled
        self.weights_changed()
        return self

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        super()._init_weights(module)
        if module is self:
            for parameter in (
                self.no_memory_positional_encoding,
                self.memory_temporal_positional_encoding,
                self.no_object_pointer,
            ):
                init.trunc_normal_(parameter, std=0.02)
            if self.occlusion_spatial_embedding_parameter is not None:
                init.trunc_normal_(self.occlusion_spatial_embedding_parameter, std=0.02)

    # ------------------------------------------------------------------ the session-level API

    def forward(
        self,
        inference_session,
        frame_idx: int | None = None,
        frame: torch.Tensor | None = None,
        reverse: bool = False,
        **kwargs,
    ) -> EdgeTamVideoSegmentationOutput:
        """Runs one frame of the session.

        If prompts were added on the frame since the last call, they are applied (each object's
        prompt is segmented on its own, with its previous logits on a tracked frame) and the
        frame's results for every object are returned. Otherwise the frame is tracked from the
        memory bank, as one step of `propagate_in_video_iterator`.

        Args:
            inference_session: an `EdgeTamVideoInferenceSession` (`EdgeTamVideoProcessor.init_video_session`).
            frame_idx: the frame to run; with `frame`, where to put it (default: after the last one).
            frame: a new streamed frame, `(3, 1024, 1024)` or `(1, 3, 1024, 1024)` from the
                video processor; it is appended to the session and run.
            reverse: the direction of tracking (memories come from later frames when True).
        """
        if kwargs:
            raise TypeError(f"EdgeTamVideoModel.forward got unexpected arguments: {sorted(kwargs)}")
        if frame is not None:
            frame_idx = inference_session.add_new_frame(frame, frame_idx)
        elif frame_idx is None:
            raise ValueError("frame_idx is required (or pass a streamed frame as frame)")
        return propagation.run_frame(self, inference_session, frame_idx, reverse)

    def propagate_in_video_iterator(
        self,
        inference_session,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
        show_progress_bar: bool = False,
    ) -> Iterator[EdgeTamVideoSegmentationOutput]:
        """Tracks every object from `start_frame_idx` (default: the first prompted frame) over
        `max_frame_num_to_track` more frames (default: to the end, or the start when `reverse`),
        yielding each frame's results; `show_progress_bar` shows a tqdm bar (transformers' argument)."""
        if not isinstance(show_progress_bar, bool):
            raise ValueError(f"show_progress_bar must be True or False, got {show_progress_bar!r}")
        frames = propagation.propagate(self, inference_session, start_frame_idx, max_frame_num_to_track, reverse)
        if show_progress_bar:
            from tqdm.auto import tqdm

            frames = tqdm(frames, desc="propagate in video", unit="frame")
        yield from frames

    def remove_object(self, inference_session, obj_id: int) -> list[EdgeTamVideoSegmentationOutput]:
        """Removes an object with its prompts and results (original: `remove_object`); returns the
        updated results of the frames it had prompts on."""
        return propagation.remove_object(self, inference_session, obj_id)

    def clear_prompts_in_frame(
        self, inference_session, frame_idx: int, obj_id: int
    ) -> EdgeTamVideoSegmentationOutput:
        """Removes one object's prompts on one frame (original: `clear_all_prompts_in_frame`); a
        frame left without prompts stops being a conditioning frame. Returns the frame's results."""
        return propagation.clear_prompts_in_frame(self, inference_session, frame_idx, obj_id)

    # ------------------------------------------------------------------ stateless steps on one frame

    # These steps keep gradients (training calls them); inference runs them under torch.no_grad()
    # or torch.inference_mode(), which also lets the RepViT trunk run folded (see `FoldedForInference`).
    # They compute in `compute_dtype`; mask logits and object scores come out in float32.

    def get_frame_features(self, pixel_values: torch.Tensor) -> FrameFeatures:
        """(1, 3, 1024, 1024) normalised frame -> its features (original: `forward_image` and
        `_prepare_backbone_features`)."""
        return self._frame_features(pixel_values)

    def condition_on_memory(self, features: FrameFeatures, memory: MemoryContext | None) -> torch.Tensor:
        """The frame's lowest-level features fused with the memory bank -> (B, 256, 64, 64).

        Without memory (an initial conditioning frame) the no-memory embedding is added instead
        (`directly_add_no_mem_embed`).
        """
        if memory is None:
            return self._add_no_memory_embedding(features.vision_features)
        return self.memory_attention(
            current_features=features.vision_features,
            current_position=features.vision_position,
            memory=memory.memory,
            memory_position=memory.memory_position,
            num_spatial_memories=memory.num_spatial_memories,
            num_object_pointer_tokens=memory.num_object_pointer_tokens,
            memory_mask=memory.memory_mask,
        )

    def predict_from_prompts(
        self,
        features: FrameFeatures,
        memory: MemoryContext | None,
        point_coordinates: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        mask_logits_prompt: torch.Tensor | None,
        multimask_output: bool,
    ) -> FramePrediction:
        """Segments a batch of objects on a frame from clicks / previous logits and the memory
        (original: `_track_step` without a mask input, then `_forward_sam_heads`).

        Args:
            features: the frame's features, one row per object, or one row shared by the
                objects of `memory` (its self-attention then runs once for all of them).
            memory: the memory bank entries, or None for an initial conditioning frame.
            point_coordinates: (B, num_points, 2) in the 1024x1024 input frame; None: no click.
            point_labels: (B, num_points): 1 / 0 clicks, 2 / 3 box corners.
            mask_logits_prompt: (B, 1, 256, 256) logits fed as a dense prompt, e.g. the object's
                previous logits on a corrected frame.
            multimask_output: decode three masks and keep the one with the best predicted IoU.
        """
        pixel_features = self.condition_on_memory(features, memory)
        features = features.expand(pixel_features.shape[0])
        return self._segment(
            pixel_features, features, point_coordinates, point_labels, mask_logits_prompt, multimask_output
        )

    def predict_from_mask(self, features: FrameFeatures, mask_prompt: torch.Tensor) -> FramePrediction:
        """A binary mask prompt becomes the output as it is (original: `_use_mask_as_output`).

        mask_prompt: (B, 1, 1024, 1024) in {0, 1}. The object pointer comes from decoding the
        downsampled mask on the frame's plain features; the object counts as visible when the
        mask has any foreground pixel.
        """
        mask_prompt = mask_prompt.float()
        high_res_logits = mask_prompt * MASK_AS_LOGITS_SCALE + MASK_AS_LOGITS_BIAS
        low_res_size = (high_res_logits.shape[-2] // 4, high_res_logits.shape[-1] // 4)
        low_res_logits = F.interpolate(
            high_res_logits, size=low_res_size, mode="bilinear", align_corners=False, antialias=True
        )
        decoded = self._segment(
            features.vision_features,
            features,
            None,
            None,
            self.mask_downsample(mask_prompt.to(self.compute_dtype)),
            multimask_output=False,
        )
        is_visible = torch.any(mask_prompt.flatten(1) > 0.0, dim=1)[..., None].float()  # (B, 1)
        object_score_logits = MASK_AS_LOGITS_SCALE * is_visible + MASK_AS_LOGITS_BIAS
        object_pointer = self._pointer_with_occlusion(decoded.object_pointer, is_visible)
        return FramePrediction(low_res_logits, high_res_logits, object_pointer, object_score_logits)

    def encode_memory(
        self,
        features: FrameFeatures,
        high_res_mask_logits: torch.Tensor,
        object_score_logits: torch.Tensor,
        binarize_mask: bool,
    ) -> EncodedMemory:
        """A frame and its predicted masks -> one compressed memory per object (original:
        `_encode_new_memory`: memory encoder, optional occlusion embedding, spatial perceiver).

        `features` may be one frame's row shared by the objects (its projection then runs once).
        `binarize_mask` thresholds the logits instead of taking their sigmoid; the original does
        so for masks that come from the user's prompts.
        """
        encoded = self.memory_encoder(
            features.vision_features, high_res_mask_logits.to(self.compute_dtype), binarize_mask=binarize_mask
        )
        memory_features = encoded.memory_features
        if self.occlusion_spatial_embedding_parameter is not None:
            is_visible = (object_score_logits > 0).to(memory_features.dtype)
            occlusion = self.occlusion_spatial_embedding_parameter[..., None, None].expand(*memory_features.shape)
            memory_features = memory_features + (1 - is_visible[..., None, None]) * occlusion
        tokens, position = self.spatial_perceiver(memory_features, encoded.memory_position)
        return EncodedMemory(tokens, position)

    def object_pointer_position(self, temporal_distances: torch.Tensor, num_frames: int, batch_size: int) -> torch.Tensor:
        """Position encodings of the object pointers -> (B, num_pointers, mem_dim).

        EdgeTAM adds none (zeros); with `enable_temporal_pos_encoding_for_object_pointers` a sine
        encoding of the normalised temporal distance is projected to the memory width.
        """
        memory_dim = self.config.memory_encoder_output_channels
        device = self.no_object_pointer.device
        if not self.config.enable_temporal_pos_encoding_for_object_pointers:
            return torch.zeros(batch_size, temporal_distances.shape[0], memory_dim, device=device, dtype=self.compute_dtype)
        max_distance = min(num_frames, self.config.max_object_pointers_in_encoder) - 1
        distances = temporal_distances.to(device) / max(max_distance, 1)
        encoding = _sine_encoding_1d(distances, self.config.vision_config.fpn_hidden_size).to(self.compute_dtype)
        encoding = self.temporal_positional_encoding_projection_layer(encoding)
        return encoding[None].expand(batch_size, -1, -1)

    def _segment(
        self,
        pixel_features: torch.Tensor,
        features: FrameFeatures,
        point_coordinates: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        mask_logits_prompt: torch.Tensor | None,
        multimask_output: bool,
    ) -> FramePrediction:
        """Prompt encoder + mask decoder on memory-conditioned features (original: `_forward_sam_heads`)."""
        batch_size = pixel_features.shape[0]
        if point_coordinates is None:
            # Without clicks the original still feeds one "not a point" token.
            point_coordinates = pixel_features.new_zeros(batch_size, 1, 2)
            point_labels = torch.full((batch_size, 1), LABEL_PADDING, dtype=torch.int32, device=pixel_features.device)
        if mask_logits_prompt is not None and tuple(mask_logits_prompt.shape[-2:]) != self.prompt_encoder.mask_input_size:
            mask_logits_prompt = F.interpolate(
                mask_logits_prompt.float(),
                size=self.prompt_encoder.mask_input_size,
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        if mask_logits_prompt is not None:
            mask_logits_prompt = mask_logits_prompt.to(self.compute_dtype)
        decoded = self._decode_prompts(
            pixel_features,
            features.high_resolution_features,
            point_coordinates[:, None],
            point_labels[:, None],
            None,
            mask_logits_prompt,
            multimask_output,
        )
        object_score_logits = decoded.object_score_logits[:, 0].float()  # (B, 1)
        is_visible = object_score_logits > 0
        # An object judged absent gets no mask at all, in the memory as in the output.
        mask_logits = torch.where(is_visible[..., None, None], decoded.mask_logits[:, 0], NO_OBJECT_SCORE).float()
        output_tokens = decoded.sam_output_tokens[:, 0]  # (B, num_masks or 1, hidden)
        output_token = output_tokens[:, 0]
        if multimask_output:
            best = torch.argmax(decoded.iou_scores[:, 0], dim=-1)
            rows = torch.arange(batch_size, device=best.device)
            mask_logits = mask_logits[rows, best].unsqueeze(1)
            if output_tokens.shape[1] > 1:
                output_token = output_tokens[rows, best]
        # Upsampled after the choice: each mask's upsampling is its own, so the chosen one's is the same.
        high_res_logits = F.interpolate(
            mask_logits, size=(self.config.image_size, self.config.image_size), mode="bilinear", align_corners=False
        )
        object_pointer = self._pointer_with_occlusion(self.object_pointer_proj(output_token), is_visible.float())
        return FramePrediction(mask_logits, high_res_logits, object_pointer, object_score_logits)

    def _pointer_with_occlusion(self, object_pointer: torch.Tensor, is_visible: torch.Tensor) -> torch.Tensor:
        """An absent object's pointer is the learned no-object pointer (`fixed_no_obj_ptr`)."""
        object_pointer = is_visible * object_pointer
        return object_pointer + (1 - is_visible) * self.no_object_pointer


def _sine_encoding_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """(N,) positions -> (N, dim) sine / cosine encoding (original: `get_1d_sine_pe`)."""
    half = dim // 2
    frequencies = torch.arange(half, dtype=torch.float32, device=positions.device)
    frequencies = temperature ** (2 * (frequencies // 2) / half)
    angles = positions.unsqueeze(-1) / frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=-1)

