"""Automatic mask generation ("segment everything") with the numerics of the original.

Ports `sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator` and the helpers of
`sam2/utils/amg.py` that it uses, cut into the steps transformers' `MaskGenerationPipeline` calls
on an image processor: `generate_crop_boxes` (crops and the point grid), `filter_masks` (per batch
of points: predicted-IoU and stability filters, boxes, crop-edge filter, run-length encoding) and
`post_process_for_mask_generation` (duplicate removal by box NMS). `EdgeTamImageProcessor` exposes
them as methods.

Why not the helpers of transformers' `Sam2ImageProcessor`:
  * their module imports torchvision (for `batched_nms`), which edgetam-hf does not depend on;
  * the point grid is scaled as if the image were resized along its longest side (SAM 1); SAM 2
    and EdgeTAM resize to a 1024x1024 square, so on a non-square image the points miss part of it
    (on a 3:2 landscape photo they cover only its top two thirds);
  * the stability filter keeps `score > thresh`; the original keeps `score >= thresh`;
  * with crop layers, one NMS by predicted IoU runs over all crops; the original runs NMS by
    predicted IoU within each crop, then NMS across crops that prefers masks from smaller crops;
  * layers with different numbers of points (`crop_n_points_downscale_factor > 1`) fail inside
    torch; here they are a clear error (the pipeline needs one point count for every crop).

The mask and box operations (run-length encoding, boxes, NMS) are in `masks_and_boxes.py`; the
check of host memory before upsampling in `host_memory.py`.

The pipeline upsamples a whole batch of points' logits to the image size at once (so does the
original); `check_room_for_upsampled_masks` turns a batch that cannot fit into a ValueError.
"""

import math
import numbers
from itertools import product

import numpy as np
import torch

from .masks_and_boxes import (
    box_area,
    is_box_near_crop_edge,
    mask_boxes,
    masks_to_rle,
    non_maximum_suppression,
    uncrop_boxes,
    uncrop_masks,
)

# SAM2AutomaticMaskGenerator's defaults as MaskGenerationPipeline keyword arguments. transformers'
# pipeline falls back to pred_iou_thresh=0.88 (SAM 1's value) when it is not given; pass these to
# `pipeline("mask-generation", ..., **ORIGINAL_MASK_GENERATION_DEFAULTS)` to run the original's settings.
ORIGINAL_MASK_GENERATION_DEFAULTS = {
    "points_per_crop": 32,
    "points_per_batch": 64,
    "pred_iou_thresh": 0.8,
    "stability_score_thresh": 0.95,
    "stability_score_offset": 1.0,
    "mask_threshold": 0.0,
    "crops_nms_thresh": 0.7,
    "crops_n_layers": 0,
    "crop_overlap_ratio": 512 / 1500,
    "crop_n_points_downscale_factor": 1,
}


def check_crop_arguments(crop_n_layers, overlap_ratio, points_per_side, downscale_factor) -> None:
    """Clear errors for arguments the original would take and then fail on (or loop on) later."""
    if not _is_int(points_per_side) or points_per_side < 1:
        raise ValueError(f"points_per_crop must be a positive int (points per side of the grid); got {points_per_side!r}")
    if not _is_int(crop_n_layers) or crop_n_layers < 0:
        raise ValueError(f"crops_n_layers must be an int >= 0; got {crop_n_layers!r}")
    if not 0 <= overlap_ratio < 1:
        raise ValueError(f"crop_overlap_ratio must be in [0, 1); got {overlap_ratio!r}")
    if not _is_int(downscale_factor) or downscale_factor < 1:
        raise ValueError(f"crop_n_points_downscale_factor must be an int >= 1; got {downscale_factor!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def crops_and_point_prompts(
    image_size: tuple[int, int],
    resolution: int,
    crop_n_layers: int,
    overlap_ratio: float,
    points_per_side: int,
    downscale_factor: int,
) -> tuple[list[list[int]], torch.Tensor]:
    """The crop boxes [x0, y0, x1, y1] of an image and each crop's grid of point prompts,
    (num_crops, num_points, 2) float32 in the model's input frame (see `crop_point_prompts`)."""
    check_crop_arguments(crop_n_layers, overlap_ratio, points_per_side, downscale_factor)
    sides = points_per_layer(points_per_side, crop_n_layers, downscale_factor)
    if len(set(sides)) > 1:
        raise ValueError(
            f"crop_n_points_downscale_factor={downscale_factor} gives the crop layers grids of {sides} points per "
            "side, but transformers' mask-generation pipeline needs the same number of points in every crop; use "
            "crop_n_points_downscale_factor=1 or crops_n_layers=0"
        )
    crop_boxes, layers = generate_crop_boxes(image_size, crop_n_layers, overlap_ratio)
    for x0, y0, x1, y1 in crop_boxes:
        if x1 <= x0 or y1 <= y0:
            raise ValueError(
                f"a {image_size[1]}x{image_size[0]} image is too small for crops_n_layers={crop_n_layers} "
                f"(crop [{x0}, {y0}, {x1}, {y1}] is empty); use fewer crop layers"
            )
    grids = [build_point_grid(side) for side in sides]
    return crop_boxes, crop_point_prompts(crop_boxes, layers, grids, resolution)


def build_point_grid(points_per_side: int) -> np.ndarray:
    """(points_per_side**2, 2) float64 (x, y) cell centres of a regular grid over [0, 1]^2, row by row."""
    offset = 1 / (2 * points_per_side)
    one_side = np.linspace(offset, 1 - offset, points_per_side)
    grid_x = np.tile(one_side[None, :], (points_per_side, 1))
    grid_y = np.tile(one_side[:, None], (1, points_per_side))
    return np.stack([grid_x, grid_y], axis=-1).reshape(-1, 2)


def points_per_layer(points_per_side: int, crop_n_layers: int, downscale_factor: int) -> list[int]:
    """Points per side of the grid of each crop layer (layer 0 is the whole image)."""
    return [int(points_per_side / (downscale_factor**layer)) for layer in range(crop_n_layers + 1)]


def generate_crop_boxes(image_size: tuple[int, int], crop_n_layers: int, overlap_ratio: float):
    """The whole image, then (2**layer)**2 overlapping crops per layer; boxes as [x0, y0, x1, y1].

    Returns `(crop_boxes, layer_indices)`, two lists of the same length.
    """
    height, width = image_size
    short_side = min(height, width)
    crop_boxes, layer_indices = [[0, 0, width, height]], [0]
    for layer in range(1, crop_n_layers + 1):
        crops_per_side = 2**layer
        overlap = int(overlap_ratio * short_side * (2 / crops_per_side))
        crop_width = _crop_length(width, crops_per_side, overlap)
        crop_height = _crop_length(height, crops_per_side, overlap)
        lefts = [int((crop_width - overlap) * i) for i in range(crops_per_side)]
        tops = [int((crop_height - overlap) * i) for i in range(crops_per_side)]
        for left, top in product(lefts, tops):
            crop_boxes.append([left, top, min(left + crop_width, width), min(top + crop_height, height)])
            layer_indices.append(layer)
    return crop_boxes, layer_indices


def _crop_length(length: int, crops_per_side: int, overlap: int) -> int:
    return int(math.ceil((overlap * (crops_per_side - 1) + length) / crops_per_side))


def crop_point_prompts(crop_boxes, layer_indices, grids: list[np.ndarray], resolution: int) -> torch.Tensor:
    """Each crop's grid in the model's input frame: (num_crops, num_points, 2) float32.

    The same float operations as the original: the float64 grid times the crop's (width, height),
    cast to float32, then `SAM2Transforms.transform_coords`: x / width, y / height, times the
    resolution (the model input is a square, so x and y are scaled separately).
    """
    prompts = []
    for (x0, y0, x1, y1), layer in zip(crop_boxes, layer_indices):
        width, height = x1 - x0, y1 - y0
        points = torch.as_tensor(grids[layer] * np.array([[width, height]]), dtype=torch.float32)
        normalised = torch.stack([points[:, 0] / width, points[:, 1] / height], dim=-1)
        prompts.append(normalised * resolution)
    return torch.stack(prompts)


def stability_scores(mask_logits: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """IoU of the masks thresholded at `mask_threshold + offset` and `- offset`: (num_masks,) float32.

    The smaller mask lies inside the larger, so the IoU is a ratio of pixel counts. Counted in
    int32 like the original (whose int16 row sums give the same numbers for images narrower than
    32768 pixels, where they do not overflow).
    """
    intersections = (mask_logits > (mask_threshold + offset)).sum(dim=(-2, -1), dtype=torch.int32)
    unions = (mask_logits > (mask_threshold - offset)).sum(dim=(-2, -1), dtype=torch.int32)
    return intersections / unions


def filter_mask_batch(
    mask_logits: torch.Tensor,
    iou_scores: torch.Tensor,
    image_size: tuple[int, int],
    crop_box,
    pred_iou_thresh: float,
    stability_score_thresh: float,
    mask_threshold: float,
    stability_score_offset: float,
):
    """One batch of points of one crop: `SAM2AutomaticMaskGenerator._process_batch` without the model.

    Args:
        mask_logits: (num_points, num_masks, crop_h, crop_w) logits at the crop's resolution.
        iou_scores: (num_points, num_masks) predicted IoU.
        image_size: (height, width) of the whole image.
        crop_box: [x0, y0, x1, y1] of the crop in the image.

    Returns:
        `(rles, scores, boxes)`: one RLE per kept mask at the whole image's size, (K,) scores and
        (K, 4) int64 boxes [x0, y0, x1, y1] in image pixels.
    """
    image_height, image_width = (int(v) for v in image_size)
    crop_box = [int(v) for v in crop_box]
    mask_logits = mask_logits.flatten(0, 1)
    scores = iou_scores.flatten(0, 1).to(mask_logits.device)
    if mask_logits.shape[0] != scores.shape[0]:
        raise ValueError(f"got {mask_logits.shape[0]} masks but {scores.shape[0]} IoU scores")

    if pred_iou_thresh > 0.0:
        keep = scores > pred_iou_thresh
        mask_logits, scores = mask_logits[keep], scores[keep]
    if stability_score_thresh > 0.0:
        keep = stability_scores(mask_logits, mask_threshold, stability_score_offset) >= stability_score_thresh
        mask_logits, scores = mask_logits[keep], scores[keep]

    masks = mask_logits > mask_threshold
    boxes = mask_boxes(masks)
    keep = ~is_box_near_crop_edge(boxes, crop_box, [0, 0, image_width, image_height])
    masks, scores, boxes = masks[keep], scores[keep], boxes[keep]

    masks = uncrop_masks(masks, crop_box, image_height, image_width)
    rles = [{**rle, "crop_box": crop_box} for rle in masks_to_rle(masks)]
    return rles, scores, uncrop_boxes(boxes, crop_box)


def remove_duplicate_masks(
    rles: list[dict], scores: torch.Tensor, boxes: torch.Tensor, box_nms_thresh: float, crop_nms_thresh: float
) -> torch.Tensor:
    """Box NMS within each crop by predicted IoU, then across crops preferring smaller crops.

    `SAM2AutomaticMaskGenerator._process_crop`'s NMS per crop and `_generate_masks`' NMS over all
    crops (scored 1 / crop area). Masks are grouped by the `"crop_box"` of their RLE (one without
    it counts as from the whole image). Returns the indices of the kept masks, in output order.
    """
    crop_keys = [tuple(rle.get("crop_box") or (0, 0, rle["size"][1], rle["size"][0])) for rle in rles]
    kept_per_crop = []
    for crop in dict.fromkeys(crop_keys):  # crops in order of first appearance, as the original processes them
        members = torch.tensor([i for i, key in enumerate(crop_keys) if key == crop], dtype=torch.int64)
        kept_per_crop.append(members[non_maximum_suppression(boxes[members], scores[members], box_nms_thresh)])
    kept = torch.cat(kept_per_crop) if kept_per_crop else torch.zeros(0, dtype=torch.int64)
    if len(kept_per_crop) > 1:
        crop_areas = torch.tensor([box_area(crop_keys[i]) for i in kept.tolist()], dtype=torch.float32)
        kept = kept[non_maximum_suppression(boxes[kept], 1 / crop_areas, crop_nms_thresh)]
    return kept
