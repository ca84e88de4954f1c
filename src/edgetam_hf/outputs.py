"""The documented outputs of the public calls."""

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class EdgeTamImageSegmentationOutput(ModelOutput):
    """Output of `EdgeTamModel.forward`.

    The fields come in transformers' `Sam2ImageSegmentationOutput` order (`iou_scores` first), so
    that `outputs[0]` and `to_tuple()` give the same tensors; `loss` comes first when there is one,
    as in every transformers output.

    Args:
        loss (`torch.FloatTensor` of shape `()`, with `labels`):
            The training loss: 20 x `focal_loss` + `dice_loss` + `iou_loss` + `object_score_loss`.
        iou_scores (`torch.FloatTensor` of shape `(batch, num_objects, num_masks)`):
            Predicted IoU of each mask.
        pred_masks (`torch.FloatTensor` of shape `(batch, num_objects, num_masks, 256, 256)`):
            Low-resolution mask logits, unclamped (the original's `low_res_masks` before the image
            predictor clamps them to +-32). `num_masks` is 3 with `multimask_output=True`, else 1.
            Upsample with `EdgeTamProcessor.post_process_masks`.
        object_score_logits (`torch.FloatTensor` of shape `(batch, num_objects, 1)`):
            Logit that the object is present in the image (> 0: present).
        image_embeddings (`list[torch.FloatTensor]`):
            The image features the masks were decoded from, reusable with another prompt:
            `(batch, 32, 256, 256)`, `(batch, 64, 128, 128)` (the high-resolution features after the
            mask decoder's projections) and `(batch, 256, 64, 64)` (the image embedding).
        vision_hidden_states (`tuple[torch.FloatTensor]`, with `output_hidden_states=True`):
            The RepViT trunk's four stage outputs, high to low resolution: `(batch, 48, 256, 256)`
            ... `(batch, 384, 32, 32)` for the released model (transformers: timm's feature maps).
        vision_attentions, mask_decoder_attentions: always None (no attention weights are returned),
            kept so that transformers' field names read the same.
        focal_loss, dice_loss, iou_loss, object_score_loss (`torch.FloatTensor` of shape `()`, with `labels`):
            The unweighted terms of `loss`, each averaged over objects (`edgetam_hf.losses`).
    """

    loss: torch.FloatTensor | None = None
    iou_scores: torch.FloatTensor | None = None
    pred_masks: torch.FloatTensor | None = None
    object_score_logits: torch.FloatTensor | None = None
    image_embeddings: list[torch.FloatTensor] | None = None
    vision_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    vision_attentions: tuple[torch.FloatTensor, ...] | None = None
    mask_decoder_attentions: tuple[torch.FloatTensor, ...] | None = None
    focal_loss: torch.FloatTensor | None = None
    dice_loss: torch.FloatTensor | None = None
    iou_loss: torch.FloatTensor | None = None
    object_score_loss: torch.FloatTensor | None = None


@dataclass
class EdgeTamVideoSegmentationOutput(ModelOutput):
    """What `EdgeTamVideoModel` returns for one frame (a call, or one step of propagation).

    Args:
        object_ids (`list[int]`):
            The session's object ids, in the order of the rows below.
        pred_masks (`torch.FloatTensor` of shape `(num_objects, 1, 256, 256)`):
            Low-resolution mask logits of every object on the frame. An object that has neither a
            prompt nor a tracking result there holds the original's placeholder, -1024 everywhere.
            Upsample with `EdgeTamVideoProcessor.post_process_masks`.
        object_score_logits (`torch.FloatTensor` of shape `(num_objects, 1)`):
            Logit that each object is visible on the frame (> 0: visible); 10.0 for placeholders.
        frame_idx (`int`):
            The frame these results belong to.
    """

    object_ids: list[int] | None = None
    pred_masks: torch.FloatTensor | None = None
    object_score_logits: torch.FloatTensor | None = None
    frame_idx: int | None = None
