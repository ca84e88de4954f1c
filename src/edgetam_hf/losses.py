"""The SAM 2 / EdgeTAM task loss: focal + dice on the masks, IoU prediction, object score.

Ports `training/loss_fns.py` of SAM 2 (`MultiStepMultiMasksAndIous`) with the weights and switches
of its released training configs (`sam2.1_hiera_b+_MOSE_finetune.yaml`, which EdgeTAM's training
reuses): focal x20, dice x1, IoU x1 (L1, every multimask output supervised), object score x1
(plain BCE). SAM's paper states the same 20:1 ratio of focal to dice loss.

Rules that matter for reproducing the original:
  * With several mask outputs (one click asks for three), only the output whose focal + dice loss
    is lowest gets the mask losses, so the three tokens can specialise on whole / part / subpart.
  * Mask and IoU losses count only for objects that are present in the ground truth; the object
    score learns presence from every object.
  * Each sum is divided by the number of objects, so that the loss does not grow with the batch.

A flat module beside modeling.py, not under training/: transformers copies a model's code for
`trust_remote_code` by following `from .name import` lines to `name.py` files, one level deep.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F


class LossWeights(NamedTuple):
    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    object_score: float = 1.0


class SegmentationLoss(NamedTuple):
    """The weighted total and its unweighted terms, each a scalar averaged over objects."""

    total: torch.Tensor
    focal: torch.Tensor
    dice: torch.Tensor
    iou: torch.Tensor
    object_score: torch.Tensor


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """RetinaNet's focal loss averaged over pixels: (..., H, W) logits and {0, 1} targets -> (...)."""
    probabilities = logits.sigmoid()
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    probability_of_truth = probabilities * targets + (1 - probabilities) * (1 - targets)
    loss = cross_entropy * (1 - probability_of_truth) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.flatten(-2).mean(-1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice, smoothed by 1 as the original: (..., H, W) logits and {0, 1} targets -> (...)."""
    probabilities = logits.sigmoid().flatten(-2)
    targets = targets.flatten(-2)
    numerator = 2 * (probabilities * targets).sum(-1)
    denominator = probabilities.sum(-1) + targets.sum(-1)
    return 1 - (numerator + 1) / (denominator + 1)


def binary_mask_iou(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IoU of the mask logits > 0 with the targets > 0: (..., H, W) -> (...), 0 when both are empty."""
    predicted, truth = logits.flatten(-2) > 0, targets.flatten(-2) > 0
    intersection = (predicted & truth).sum(-1).float()
    union = (predicted | truth).sum(-1).float()
    return intersection / union.clamp(min=1.0)


def segmentation_loss(
    mask_logits: torch.Tensor,
    iou_scores: torch.Tensor,
    object_score_logits: torch.Tensor,
    targets: torch.Tensor,
    weights: LossWeights = LossWeights(),
) -> SegmentationLoss:
    """The loss of one prediction per object.

    Args:
        mask_logits: (num_objects, num_masks, H, W) at the size of `targets` (the original upsamples
            the 256x256 logits to the input size first).
        iou_scores: (num_objects, num_masks), the predicted IoU after its sigmoid.
        object_score_logits: (num_objects, 1).
        targets: (num_objects, H, W) binary ground-truth masks.
    """
    num_objects = max(targets.shape[0], 1)
    targets = targets.to(mask_logits.dtype)
    expanded_targets = targets[:, None].expand_as(mask_logits)
    focal_per_mask = sigmoid_focal_loss(mask_logits, expanded_targets)  # (num_objects, num_masks)
    dice_per_mask = dice_loss(mask_logits, expanded_targets)
    with torch.no_grad():
        true_iou = binary_mask_iou(mask_logits, expanded_targets)
    iou_per_mask = F.l1_loss(iou_scores.to(mask_logits.dtype), true_iou, reduction="none")

    best = torch.argmin(focal_per_mask * weights.focal + dice_per_mask * weights.dice, dim=-1, keepdim=True)
    is_present = targets.flatten(1).gt(0).any(-1).to(mask_logits.dtype)  # (num_objects,)
    focal = (focal_per_mask.gather(-1, best)[:, 0] * is_present).sum() / num_objects
    dice = (dice_per_mask.gather(-1, best)[:, 0] * is_present).sum() / num_objects
    iou = (iou_per_mask.mean(-1) * is_present).sum() / num_objects
    object_score = F.binary_cross_entropy_with_logits(
        object_score_logits[:, 0].to(mask_logits.dtype), is_present, reduction="sum"
    ) / num_objects
    total = weights.focal * focal + weights.dice * dice + weights.iou * iou + weights.object_score * object_score
    return SegmentationLoss(total, focal, dice, iou, object_score)


def image_model_loss(
    pred_masks: torch.Tensor,
    iou_scores: torch.Tensor,
    object_score_logits: torch.Tensor,
    labels: torch.Tensor,
    weights: LossWeights = LossWeights(),
) -> SegmentationLoss:
    """`EdgeTamModel`'s outputs and `labels` (batch, num_objects, H, W) -> the loss over every object.

    pred_masks (batch, num_objects, num_masks, h, w) are upsampled bilinearly to (H, W), the size
    of `pixel_values`, as the original's training does before its loss.
    """
    if labels.ndim != 4 or labels.shape[:2] != pred_masks.shape[:2]:
        raise ValueError(
            f"labels must have shape (batch, num_objects, height, width) = {tuple(pred_masks.shape[:2])} + (H, W), "
            f"got {tuple(labels.shape)}"
        )
    batch_size, num_objects, num_masks = pred_masks.shape[:3]
    rows = batch_size * num_objects
    mask_logits = F.interpolate(
        pred_masks.reshape(rows, num_masks, *pred_masks.shape[-2:]).float(),
        size=labels.shape[-2:],
        mode="bilinear",
        align_corners=False,
    )
    return segmentation_loss(
        mask_logits,
        iou_scores.reshape(rows, num_masks),
        object_score_logits.reshape(rows, 1),
        labels.reshape(rows, *labels.shape[-2:]),
        weights,
    )
