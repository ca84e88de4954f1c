"""The exported graphs as `nn.Module` wrappers around the model's own modules (torch only).

Each wrapper calls the modules `EdgeTamModel` uses, in the order it uses them, with plain tensors
in and out, so that `torch.onnx.export` sees one fixed path: no Python branch depends on a prompt,
and both mask choices (three candidates, or the single mask with the stability fallback) come out
of one pass through the decoder.
"""

import torch
from torch import nn

from ..modeling import EdgeTamModel


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
        self.register_buffer("image_positional_embeddings", model.get_image_positional_embeddings().detach().clone())

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
