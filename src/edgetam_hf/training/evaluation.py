"""One-click segmentation quality: the first click at an object's most interior pixel, as in SAM's
interactive evaluation, and the IoU of the answer with the ground truth."""

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


@torch.no_grad()
def one_click_iou(model: EdgeTamModel, processor: EdgeTamProcessor, image, masks: np.ndarray) -> list[float]:
    """IoU per object of `masks` (num_objects, height, width) from one interior click each: the
    multimask output with the highest predicted IoU, upsampled to the image and cut at 0."""
    clicks = [[list(interior_click(mask))] for mask in masks]
    inputs = processor(images=image, input_points=[clicks], input_labels=[[[1]] * len(clicks)])
    outputs = model(**inputs, multimask_output=True)
    best = outputs.iou_scores[0].argmax(-1)  # (num_objects,)
    best_logits = outputs.pred_masks[0, torch.arange(len(masks)), best]  # (num_objects, h, w)
    upsampled = processor.post_process_masks(best_logits[None, :, None], inputs["original_sizes"], binarize=False)[0]
    return binary_mask_iou(upsampled[:, 0], torch.as_tensor(masks).float()).tolist()
