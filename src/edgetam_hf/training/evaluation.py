"""Prompted segmentation quality on held-out images: the first click at an object's most interior
pixel, as in SAM's interactive evaluation, or the object's bounding box, and the IoU of the answer
with the ground truth at the image's size."""

from typing import NamedTuple

import numpy as np
import torch

from ..modeling import EdgeTamModel
from ..processing import EdgeTamProcessor
from ..losses import binary_mask_iou


def interior_click(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of the pixel of `mask` (height, width) farthest from its border (4-neighbour erosion
    until one more step would empty it; the remaining pixel closest to their mean)."""
    core = mask.astype(bool)
    while True:
        eroded = core.copy()
        eroded[1:] &= core[:-1]
        eroded[:-1] &= core[1:]
        eroded[:, 1:] &= core[:, :-1]
        eroded[:, :-1] &= core[:, 1:]
        eroded[[0, -1]] = False
        eroded[:, [0, -1]] = False
        if not eroded.any():
            break
        core = eroded
    ys, xs = np.nonzero(core)
    if len(xs) == 0:
        raise ValueError("interior_click: the mask is empty")
    nearest = np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2)
    return (float(xs[nearest]), float(ys[nearest]))


class PromptedIous(NamedTuple):
    """IoU per object (lists of num_objects floats)."""

    one_click: list[float]  # three outputs, the one with the highest predicted IoU (SAM's protocol)
    one_click_best_of_three: list[float]  # the best of the three by true IoU: the IoU head's ceiling
    box: list[float]  # the tight bounding box, one output (how the demo prompts)


@torch.no_grad()
def prompted_ious(model: EdgeTamModel, processor: EdgeTamProcessor, image, masks: np.ndarray) -> PromptedIous:
    """`PromptedIous` of the objects `masks` (num_objects, height, width) of `image`."""
    truth = torch.as_tensor(masks).float()  # (num_objects, height, width)
    clicks = [[list(interior_click(mask))] for mask in masks]
    inputs = processor(images=image, input_points=[clicks], input_labels=[[[1]] * len(clicks)])
    outputs = model(**inputs, multimask_output=True)
    click_logits = _at_image_size(processor, outputs.pred_masks, inputs)  # (num_objects, 3, height, width)
    click_ious = binary_mask_iou(click_logits, truth[:, None].expand_as(click_logits))  # (num_objects, 3)
    chosen = outputs.iou_scores[0].argmax(-1)

    boxes = [[float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())] for ys, xs in map(np.nonzero, masks)]
    box_inputs = processor(original_sizes=inputs["original_sizes"], input_boxes=[boxes])
    box_outputs = model(image_embeddings=outputs.image_embeddings, input_boxes=box_inputs["input_boxes"], multimask_output=False)
    box_logits = _at_image_size(processor, box_outputs.pred_masks, inputs)[:, 0]
    return PromptedIous(
        click_ious.gather(-1, chosen[:, None])[:, 0].tolist(),
        click_ious.max(-1).values.tolist(),
        binary_mask_iou(box_logits, truth).tolist(),
    )


def _at_image_size(processor: EdgeTamProcessor, pred_masks: torch.Tensor, inputs) -> torch.Tensor:
    """(1, num_objects, num_masks, h, w) low-resolution logits -> (num_objects, num_masks, H, W) logits."""
    return processor.post_process_masks(pred_masks, inputs["original_sizes"], binarize=False)[0]
