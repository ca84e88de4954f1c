"""The training forward of the video model on a short clip (the paper trains on 8 frames).

The object prompts act on the first frame; every later frame is tracked from the memory bank, as
inference tracks it, with gradients through the whole chain: frame features, memory encoder,
spatial perceiver, memory attention, object pointers. Each frame's prediction gets the mask
losses of `edgetam_hf.losses` (focal x20, Dice x1, for objects present on that frame) and the
object-score BCE against "present on that frame" (the occlusion loss).

Built from the model's public methods, the tracker's own memory selection
(`tracking.rules.memory_plan`) and the tracking step inference runs (`video.step.track_step`),
so that training reads the same memories and computes the same step as tracking (inference
runs it under `torch.no_grad()`; here it keeps its gradients).

Not here: the IoU loss and the best-of-three rule on clips (`predict_from_prompts` returns the
chosen mask only; the image loss trains the IoU head), correction clicks on later frames, and
feature distillation.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..losses import LossWeights, dice_loss, sigmoid_focal_loss
from ..modeling_video import EdgeTamVideoModel
from ..tracking.records import FrameResult, FrameResults
from ..tracking.rules import TrackingRules, memory_plan
from ..video.memory_bank import gather_memory_slots
from ..video.step import TrackStepOutput, track_step


class ClipLoss(NamedTuple):
    """The weighted total over frames and the unweighted terms per frame, each (num_frames,)."""

    total: torch.Tensor
    focal: torch.Tensor
    dice: torch.Tensor
    object_score: torch.Tensor


def clip_loss(
    model: EdgeTamVideoModel,
    pixel_values: torch.Tensor,
    labels: torch.Tensor,
    input_points: torch.Tensor,
    input_labels: torch.Tensor,
    weights: LossWeights = LossWeights(),
) -> ClipLoss:
    """The loss of tracking `num_objects` objects through a clip from prompts on its first frame.

    Args:
        pixel_values: (num_frames, 3, S, S) frames as `EdgeTamVideoProcessor` returns them.
        labels: (num_frames, num_objects, S, S) binary masks at the input size; an all-zero mask
            is an object absent (occluded) on that frame.
        input_points: (num_objects, num_points, 2) (x, y) in the S x S input frame.
        input_labels: (num_objects, num_points): 1 / 0 clicks, 2 / 3 box corners.
    """
    _check_clip(model, pixel_values, labels, input_points, input_labels)
    num_frames = pixel_values.shape[0]
    rules = TrackingRules.read(model.config)
    results = FrameResults()  # one FrameResult per frame, holding every object's rows
    terms = []
    for frame_idx in range(num_frames):
        features = model.get_frame_features(pixel_values[frame_idx : frame_idx + 1])
        if frame_idx == 0:
            multimask = rules.use_multimask(True, input_points.shape[1])
            prediction = model.predict_from_prompts(features, None, input_points, input_labels, None, multimask)
            # A prompted frame enters the memory binarised, as in inference.
            memory = model.encode_memory(features, prediction.high_res_mask_logits, prediction.object_score_logits, True)
            memory_position = memory.memory_position[0:1]
            step = TrackStepOutput(prediction.mask_logits, prediction.object_pointer, prediction.object_score_logits, *memory)
        else:
            # The tracking step inference runs, on the memories it reads.
            plan = memory_plan(rules, results, frame_idx, False, num_frames)
            stored = [[results.of_kind(entry.is_conditioning)[entry.frame_idx] for entry in plan.entries]]
            slots = gather_memory_slots(plan, stored, pixel_values.device)
            step = track_step(model, features, slots, memory_position, num_frames, rules.use_multimask(False, 0))
        terms.append(_frame_terms(step, labels[frame_idx]))
        result = FrameResult(step.mask_logits, step.object_pointer, step.object_score_logits, step.memory_tokens)
        results.of_kind(frame_idx == 0)[frame_idx] = result
    focal, dice, object_score = (torch.stack(term) for term in zip(*terms))
    total = (weights.focal * focal + weights.dice * dice + weights.object_score * object_score).sum()
    return ClipLoss(total, focal, dice, object_score)


def _frame_terms(prediction: TrackStepOutput, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Focal, Dice (objects present on the frame) and object-score BCE, each averaged over objects."""
    num_objects = truth.shape[0]
    logits = F.interpolate(prediction.mask_logits, size=truth.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    truth = truth.to(logits.dtype)
    is_present = truth.flatten(1).gt(0).any(-1).to(logits.dtype)  # (num_objects,)
    focal = (sigmoid_focal_loss(logits, truth) * is_present).sum() / num_objects
    dice = (dice_loss(logits, truth) * is_present).sum() / num_objects
    object_score = F.binary_cross_entropy_with_logits(
        prediction.object_score_logits[:, 0], is_present, reduction="sum"
    ) / num_objects
    return focal, dice, object_score


def _check_clip(model, pixel_values, labels, input_points, input_labels) -> None:
    side = model.config.image_size
    if not isinstance(model, EdgeTamVideoModel):
        raise TypeError(f"model must be an EdgeTamVideoModel, got {type(model).__name__}")
    if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (3, side, side) or pixel_values.shape[0] < 1:
        raise ValueError(f"pixel_values must have shape (num_frames >= 1, 3, {side}, {side}), got {tuple(pixel_values.shape)}")
    num_frames = pixel_values.shape[0]
    if labels.ndim != 4 or labels.shape[0] != num_frames or tuple(labels.shape[2:]) != (side, side):
        raise ValueError(f"labels must have shape ({num_frames}, num_objects, {side}, {side}), got {tuple(labels.shape)}")
    num_objects = labels.shape[1]
    if input_points.ndim != 3 or tuple(input_points.shape[::2]) != (num_objects, 2):
        raise ValueError(f"input_points must have shape ({num_objects}, num_points, 2), got {tuple(input_points.shape)}")
    if tuple(input_labels.shape) != tuple(input_points.shape[:2]):
        raise ValueError(f"input_labels must have shape {tuple(input_points.shape[:2])}, got {tuple(input_labels.shape)}")
