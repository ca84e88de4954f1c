"""Correction clicks: one more click per object where the model's answer is wrong, as SAM 2's
training adds them after the first prompt (`sample_random_points_from_errors` in
`sam2/modeling/sam2_utils.py`, driven by `SAM2Train._iter_correct_pt_sampling`).

The click is drawn uniformly from the object's error pixels: a positive click on a missed pixel of
the object, a negative click on a pixel wrongly given to it; with no error, a negative click on
the background. The corrected prompt (the first prompt plus the click, and the previous mask
logits as a mask prompt) asks for one mask, as any prompt of more than one point does. Negative
clicks on distractors and the single output make this the part of training where a model cannot
do well without reading its prompt.
"""

import numpy as np
import torch
import torch.nn.functional as F

from ..conventions import LABEL_NEGATIVE, LABEL_POSITIVE
from ..modeling import EdgeTamModel
from ..outputs import EdgeTamImageSegmentationOutput


def sample_correction_clicks(
    predicted: torch.Tensor, truth: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, H, W) bool predicted and true masks -> one click per row: (rows, 1, 2) (x, y) pixel
    coordinates and (rows, 1) labels (1 positive, 0 negative)."""
    if predicted.shape != truth.shape or predicted.ndim != 3:
        raise ValueError(f"predicted and truth must both be (rows, H, W), got {tuple(predicted.shape)} and {tuple(truth.shape)}")
    points, labels = [], []
    for predicted_mask, true_mask in zip(predicted.cpu().numpy(), truth.cpu().numpy()):
        missed, wrong = true_mask & ~predicted_mask, ~true_mask & predicted_mask
        if not (missed.any() or wrong.any()):
            wrong = ~true_mask
        if not wrong.any() and not missed.any():  # the object fills the image and is right
            missed = true_mask
        ys, xs = np.nonzero(missed | wrong)
        index = int(rng.integers(len(xs)))
        points.append([float(xs[index]), float(ys[index])])
        labels.append(LABEL_POSITIVE if missed[ys[index], xs[index]] else LABEL_NEGATIVE)
    return torch.tensor(points).reshape(-1, 1, 2), torch.tensor(labels).reshape(-1, 1)


def corrected_prediction(
    model: EdgeTamModel, batch: dict, first: EdgeTamImageSegmentationOutput, rng: np.random.Generator
) -> EdgeTamImageSegmentationOutput:
    """The model's answer, with the loss, to `batch`'s prompts plus one correction click per object.

    `batch` holds the collator's output (input_points / input_labels in the input frame, labels at
    the input size) and `first` the model's output for it, with gradients; the image features are
    reused. The previous logits enter as the mask prompt detached, so each answer's loss trains
    that answer (SAM 2 sums the losses of all its correction steps likewise).
    """
    labels = batch["labels"]  # (batch, objects, S, S) at the input size, the frame of the points
    batch_size, num_objects = labels.shape[:2]
    chosen = first.iou_scores.argmax(-1)  # (batch, objects): the output inference would answer with
    previous_logits = first.pred_masks.gather(
        2, chosen[..., None, None, None].expand(-1, -1, 1, *first.pred_masks.shape[-2:])
    )[:, :, 0].detach()  # (batch, objects, h, w)
    predicted = F.interpolate(previous_logits, size=labels.shape[-2:], mode="bilinear", align_corners=False) > 0
    points, point_labels = sample_correction_clicks(predicted.flatten(0, 1), labels.flatten(0, 1) > 0, rng)
    input_points = torch.cat([batch["input_points"], points.view(batch_size, num_objects, 1, 2).to(labels.device)], dim=2)
    input_labels = torch.cat([batch["input_labels"], point_labels.view(batch_size, num_objects, 1).to(labels.device)], dim=2)
    return model(
        image_embeddings=first.image_embeddings,
        input_points=input_points,
        input_labels=input_labels,
        input_masks=previous_logits,
        multimask_output=False,
        labels=labels,
    )
