"""The exported graphs as `nn.Module` wrappers around the model's own modules (torch only).

Each wrapper calls the modules `EdgeTamModel` uses, in the order it uses them, with plain tensors
in and out, so that `torch.onnx.export` sees one fixed path: no Python branch depends on a prompt,
and both mask choices (three candidates, or the single mask with the stability fallback) come out
of one pass through the decoder.

The video graphs wrap the tracking step (`video.step`): `MemoryEncoderGraph` encodes the memory of
a prompted frame, `TrackingStepGraph` runs one frame of a batch of objects from a fixed number of
memory slots with a validity mask, clicks and a mask prompt, and `MaskPromptGraph` turns a binary
mask prompt into a result as the original does (the mask itself is the output). What the step leaves to Python
(hole filling, which memories fill the slots) is the runtime's, in NumPy.
"""

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling import EdgeTamModel
from ..tracking.records import NO_OBJECT_SCORE
from ..video.step import memory_context
from ..video.types import FrameFeatures, MemorySlots

if TYPE_CHECKING:
    from ..modeling_video import EdgeTamVideoModel


class ImageEncoderGraph(nn.Module):
    """`pixel_values` (batch, 3, S, S) -> a frame's features, as the video model keeps them
    (`FrameFeatures`): the two projected high-resolution levels and the raw lowest level."""

    def __init__(self, model: EdgeTamModel):
        super().__init__()
        self.vision_encoder = model.vision_encoder
        self.mask_decoder = model.mask_decoder

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fpn_features, _ = self.vision_encoder(pixel_values)
        feat_s0, feat_s1 = self.mask_decoder.project_high_resolution_features(fpn_features[:2])
        return feat_s0, feat_s1, fpn_features[-1]


class PromptMaskDecoderGraph(nn.Module):
    """Prompts on one encoded image -> mask logits of every object (the image model's `forward`
    given `image_embeddings`).

    The sparse tokens come in as they enter the prompt encoder's point embedding: box corners
    (labels 2, 3) first, then the clicks, then one padding point (label -1), padded across objects
    with label -1; a mask prompt alone has no token at all (`num_points` = 0). The caller builds
    them (`edgetam_hf.onnx.prompts`) because their count is what varies between prompts.
    """

    def __init__(self, model: EdgeTamModel):
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder
        self.no_memory_embedding = model.no_memory_embedding
        # A constant of the graph: the encoding of the image-embedding grid.
        self.register_buffer("image_positional_embeddings", model.get_image_wide_positional_embeddings().detach().clone())

    def forward(
        self,
        vision_features: torch.Tensor,  # (1, hidden, h, w) from the image encoder
        high_res_feat_s0: torch.Tensor,  # (1, hidden / 8, 4h, 4w)
        high_res_feat_s1: torch.Tensor,  # (1, hidden / 4, 2h, 2w)
        point_coords: torch.Tensor,  # (num_objects, num_points, 2) float32 (x, y) in the S x S input
        point_labels: torch.Tensor,  # (num_objects, num_points) int64
        mask_input: torch.Tensor,  # (num_objects, 1, 4h, 4w) mask logits; read where has_mask_input is 1
        has_mask_input: torch.Tensor,  # (1,) float32: 1 with a mask prompt, 0 without
    ) -> tuple[torch.Tensor, ...]:
        # Every image has no memory: the image model adds the no-memory embedding (`get_image_embeddings`).
        image_embeddings = vision_features + self.no_memory_embedding.view(1, -1, 1, 1)
        # The prompt encoder shifts clicks to the pixel centre before appending its padding point;
        # the caller's padding points are replaced by `not_a_point_embed`, so shifting them too is moot.
        sparse_embeddings = self.prompt_encoder._embed_points((point_coords + 0.5)[None], point_labels[None])
        no_mask = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        # Exact choice in float arithmetic: 1 * x + 0 * y == x and 0 * x + 1 * y == y for finite x, y.
        dense_embeddings = has_mask_input * self.prompt_encoder.mask_embed(mask_input) + (1 - has_mask_input) * no_mask
        every_mask = self.mask_decoder.decode_every_mask(
            image_embeddings,
            self.image_positional_embeddings,
            sparse_embeddings,
            dense_embeddings,
            (high_res_feat_s0, high_res_feat_s1),
        )
        multimask = self.mask_decoder.select_masks(every_mask, multimask_output=True)
        single = self.mask_decoder.select_masks(every_mask, multimask_output=False)
        return (
            multimask.mask_logits[0],  # (num_objects, 3, 4h, 4w)
            multimask.iou_scores[0],  # (num_objects, 3)
            single.mask_logits[0],  # (num_objects, 1, 4h, 4w)
            single.iou_scores[0],  # (num_objects, 1)
            every_mask.object_score_logits[0],  # (num_objects, 1)
        )


class _VideoGraph(nn.Module):
    """Holds the video model and the constants of its step: the sine encoding of the frame's
    feature grid and the position encoding of a memory's tokens (the same for every frame)."""

    def __init__(self, model: "EdgeTamVideoModel"):
        super().__init__()
        self.model = model
        side = model.config.image_size
        parameter = model.no_object_pointer
        frame = model.get_frame_features(torch.zeros(1, 3, side, side, dtype=parameter.dtype))
        self.register_buffer("vision_position", frame.vision_position.detach().clone())  # (1, hidden, h, w)
        mask_side = model.prompt_encoder.mask_input_size[0]
        memory = model.encode_memory(
            frame, torch.zeros(1, 1, side, side, dtype=parameter.dtype), torch.zeros(1, 1), binarize_mask=True
        )
        self.register_buffer("memory_position", memory.memory_position.detach().clone())  # (1, T, mem_dim)
        self.image_size = side
        self.mask_side = mask_side

    def frame_features(self, vision_features, high_res_feat_s0=None, high_res_feat_s1=None) -> FrameFeatures:
        high_resolution = () if high_res_feat_s0 is None else (high_res_feat_s0, high_res_feat_s1)
        return FrameFeatures(high_resolution, vision_features, self.vision_position)

    def upsample(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """(B, 1, 256, 256) -> (B, 1, 1024, 1024), as the model feeds masks to the memory encoder."""
        return F.interpolate(mask_logits, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)


class MemoryEncoderGraph(_VideoGraph):
    """The memory of a prompted frame (memory encoder + 2D spatial perceiver), from its masks
    binarised, as the session encodes them when prompts are consolidated."""

    def forward(
        self,
        vision_features: torch.Tensor,  # (1, hidden, h, w) from the image encoder
        mask_logits: torch.Tensor,  # (num_objects, 1, 4h, 4w) the objects' low-resolution logits
        object_score_logits: torch.Tensor,  # (num_objects, 1)
    ) -> torch.Tensor:
        num_objects = mask_logits.shape[0]
        features = self.frame_features(vision_features.expand(num_objects, -1, -1, -1))
        memory = self.model.encode_memory(features, self.upsample(mask_logits), object_score_logits, binarize_mask=True)
        return memory.memory_tokens  # (num_objects, T, mem_dim)


class TrackingStepGraph(_VideoGraph):
    """One frame for a batch of objects: memory attention over the valid slots, prompt encoder and
    mask decoder, the object pointer, and the memory of the result (`video.step.track_step`
    before hole filling, and `_run_prompt` with clicks and a mask prompt).

    An object whose memory slots are all invalid is segmented without memory (with the no-memory
    embedding, as on an initial conditioning frame). `multimask_output` (1,) chooses, as the
    model's Python flag does, between the best of three candidates and the single mask with its
    stability fallback; both come from one pass through the decoder.
    """

    def __init__(self, model: "EdgeTamVideoModel"):
        super().__init__(model)
        self.register_buffer("image_positional_embeddings", model.get_image_wide_positional_embeddings().detach().clone())

    def forward(
        self,
        vision_features: torch.Tensor,  # (1, hidden, h, w)
        high_res_feat_s0: torch.Tensor,  # (1, hidden / 8, 4h, 4w)
        high_res_feat_s1: torch.Tensor,  # (1, hidden / 4, 2h, 2w)
        memory_tokens: torch.Tensor,  # (B, S, T, mem_dim)
        memory_temporal_slot: torch.Tensor,  # (S,) int64 t_pos in [0, num_maskmem)
        memory_valid: torch.Tensor,  # (B, S) bool
        object_pointers: torch.Tensor,  # (B, P, hidden)
        pointer_temporal_position: torch.Tensor,  # (P,) distance / max distance (see the runtime)
        pointer_valid: torch.Tensor,  # (B, P) bool
        point_coords: torch.Tensor,  # (B, N, 2) (x, y) in the S x S input, padding point included
        point_labels: torch.Tensor,  # (B, N) int64
        mask_input: torch.Tensor,  # (B, 1, 4h, 4w) mask logits; read where has_mask_input is 1
        has_mask_input: torch.Tensor,  # (1,) 1 with a mask prompt, 0 without
        multimask_output: torch.Tensor,  # (1,) 1: best of three candidates, 0: the single mask
    ) -> tuple[torch.Tensor, ...]:
        model = self.model
        batch_size = memory_tokens.shape[0]
        has_memory = memory_valid.any(dim=1)  # (B,)
        # A row without memory reads every slot, so that no softmax runs over nothing; its result is not used.
        slots = MemorySlots(
            memory_tokens,
            memory_temporal_slot,
            memory_valid | ~has_memory[:, None],
            object_pointers,
            pointer_temporal_position,
            pointer_valid,
        )
        # num_frames=2 makes the pointer encoding divide by 1: the runtime gives the distances normalised.
        memory = memory_context(model, slots, self.memory_position, num_frames=2)
        features = self.frame_features(vision_features, high_res_feat_s0, high_res_feat_s1)
        pixel_features = torch.where(
            has_memory[:, None, None, None], model.condition_on_memory(features, memory), model.condition_on_memory(features, None)
        )  # (B, hidden, h, w)

        prompt_encoder = model.prompt_encoder
        # Clicks shifted to the pixel centre, as the prompt encoder does; padding points are replaced by `not_a_point_embed`.
        sparse_embeddings = prompt_encoder._embed_points((point_coords + 0.5)[:, None], point_labels[:, None])
        no_mask = prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        # Exact choice in float arithmetic: 1 * x + 0 * y == x and 0 * x + 1 * y == y for finite x, y.
        dense_embeddings = has_mask_input * prompt_encoder.mask_embed(mask_input) + (1 - has_mask_input) * no_mask
        features = features.expand(batch_size)
        every_mask = model.mask_decoder.decode_every_mask(
            pixel_features,
            self.image_positional_embeddings,
            sparse_embeddings,
            dense_embeddings,
            features.high_resolution_features,
        )
        mask_logits, output_token = self._chosen_mask(every_mask, multimask_output > 0.5)
        object_score_logits = every_mask.object_score_logits[:, 0].float()  # (B, 1)
        is_visible = object_score_logits > 0
        # An object judged absent gets no mask at all, in the memory as in the output.
        mask_logits = torch.where(is_visible[..., None, None], mask_logits, NO_OBJECT_SCORE).float()
        object_pointer = model._pointer_with_occlusion(model.object_pointer_proj(output_token), is_visible.float())
        memory = model.encode_memory(features, self.upsample(mask_logits), object_score_logits, binarize_mask=False)
        return mask_logits, object_pointer, object_score_logits, memory.memory_tokens

    def _chosen_mask(self, every_mask, multimask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, 4h, 4w) logits and (B, hidden) mask token: the best candidate, or the single mask."""
        decoder = self.model.mask_decoder
        candidates = decoder.select_masks(every_mask, multimask_output=True)
        single = decoder.select_masks(every_mask, multimask_output=False)
        best = torch.argmax(candidates.iou_scores[:, 0], dim=-1)  # (B,)
        rows = torch.arange(best.shape[0], device=best.device)
        best_logits = candidates.mask_logits[:, 0][rows, best].unsqueeze(1)
        best_token = candidates.sam_output_tokens[:, 0][rows, best]
        mask_logits = torch.where(multimask, best_logits, single.mask_logits[:, 0])
        output_token = torch.where(multimask, best_token, single.sam_output_tokens[:, 0, 0])
        return mask_logits, output_token


class MaskPromptGraph(_VideoGraph):
    """Binary mask prompts on one frame -> the objects' results (`EdgeTamVideoModel.predict_from_mask`,
    original `_use_mask_as_output`): the mask as +-10 logits downsampled with the antialiased
    filter, an object score of +-10 from whether the mask is empty, and the object pointer of the
    downsampled mask decoded on the frame's plain features (no memory, no no-memory embedding).

    The tracking step cannot give this: without memory it adds the no-memory embedding, and the
    mask prompt it takes is already at the decoder's resolution.
    """

    def forward(
        self,
        vision_features: torch.Tensor,  # (1, hidden, h, w)
        high_res_feat_s0: torch.Tensor,  # (1, hidden / 8, 4h, 4w)
        high_res_feat_s1: torch.Tensor,  # (1, hidden / 4, 2h, 2w)
        mask_prompt: torch.Tensor,  # (num_objects, 1, 16h, 16w) in {0, 1} at the model's input size
    ) -> tuple[torch.Tensor, ...]:
        features = self.frame_features(vision_features, high_res_feat_s0, high_res_feat_s1).expand(mask_prompt.shape[0])
        prediction = self.model.predict_from_mask(features, mask_prompt)
        # (num_objects, 1, 4h, 4w) logits, (num_objects, hidden), (num_objects, 1)
        return prediction.mask_logits, prediction.object_pointer, prediction.object_score_logits
