"""Segment everything with the masks of `pipeline("mask-generation")`, in a fraction of its time.

transformers' pipeline (and the original) upsamples every candidate of a batch of points to the
crop's full resolution, then drops those whose predicted IoU is at most `pred_iou_thresh`: most of
them, and each a (height, width) float32 image (a 64-point batch of 1024x768 is 600 MB). The
predicted IoU does not depend on the upsampled logits, so here that test runs first, on the
decoder's scores, and only the candidates that pass are upsampled; every later step (stability,
crop edges, run-length encoding, NMS) is the image processor's, as the pipeline calls it, on the
same masks in the same order. The crops, point grid and image embeddings are computed as the
pipeline computes them (`EdgeTamImageProcessor.generate_crop_boxes`, one encoding per crop).
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from .mask_generation import ORIGINAL_MASK_GENERATION_DEFAULTS

if TYPE_CHECKING:
    from PIL import Image

    from .image_processing import EdgeTamImageProcessor
    from .modeling import EdgeTamModel


def num_decoder_batches(points_per_side: int, points_per_batch: int, crops_n_layers: int) -> int:
    """How many decoder calls `generate_masks` makes (one grid of points per crop)."""
    num_crops = sum(4**layer for layer in range(crops_n_layers + 1))
    return num_crops * -(-points_per_side**2 // points_per_batch)


@torch.no_grad()
def generate_masks(
    model: "EdgeTamModel",
    image_processor: "EdgeTamImageProcessor",
    image: "Image.Image",
    *,
    points_per_side: int = ORIGINAL_MASK_GENERATION_DEFAULTS["points_per_crop"],
    points_per_batch: int = ORIGINAL_MASK_GENERATION_DEFAULTS["points_per_batch"],
    pred_iou_thresh: float = ORIGINAL_MASK_GENERATION_DEFAULTS["pred_iou_thresh"],
    stability_score_thresh: float = ORIGINAL_MASK_GENERATION_DEFAULTS["stability_score_thresh"],
    stability_score_offset: float = ORIGINAL_MASK_GENERATION_DEFAULTS["stability_score_offset"],
    mask_threshold: float = ORIGINAL_MASK_GENERATION_DEFAULTS["mask_threshold"],
    crops_nms_thresh: float = ORIGINAL_MASK_GENERATION_DEFAULTS["crops_nms_thresh"],
    crops_n_layers: int = ORIGINAL_MASK_GENERATION_DEFAULTS["crops_n_layers"],
    crop_overlap_ratio: float = ORIGINAL_MASK_GENERATION_DEFAULTS["crop_overlap_ratio"],
    on_batch: Callable[[], None] | None = None,
) -> dict:
    """`pipeline("mask-generation")(image, points_per_crop=points_per_side, ..., output_bboxes_mask=True)`'s
    answer: {"masks": list of (height, width) bool tensors, "scores": (K,), "bounding_boxes": (K, 4)}.
    `on_batch` is called after each decoder call (progress)."""
    if points_per_batch < 1:
        raise ValueError(f"points_per_batch must be at least 1, got {points_per_batch}")
    side = image_processor.size["height"]
    crop_boxes, points, crops, labels = image_processor.generate_crop_boxes(
        image, side, crops_n_layers, crop_overlap_ratio, points_per_side, 1, device=model.device
    )
    inputs = image_processor(images=crops, return_tensors="pt")
    full_size = inputs["original_sizes"][0].tolist()
    rles, scores, boxes = [], [], []
    for crop, pixel_values in enumerate(inputs["pixel_values"]):
        embeddings = model.get_image_embeddings(pixel_values[None].to(model.device, model.dtype))
        crop_size = inputs["original_sizes"][crop : crop + 1]
        for start in range(0, points.shape[1], points_per_batch):
            outputs = model(
                image_embeddings=embeddings,
                input_points=points[:, start : start + points_per_batch, crop : crop + 1],
                input_labels=labels[:, start : start + points_per_batch, crop : crop + 1],
            )
            iou_scores = outputs.iou_scores[0]  # (points, 3)
            # the pipeline's first filter (filter_masks), before the upsampling instead of after
            passing = iou_scores > pred_iou_thresh if pred_iou_thresh > 0 else torch.ones_like(iou_scores, dtype=torch.bool)
            if bool(passing.any()):
                low_res = outputs.pred_masks[0][passing]  # (kept, 256, 256), in the pipeline's order
                logits = image_processor.post_process_masks(low_res[None, :, None], crop_size, binarize=False)[0]
                batch = image_processor.filter_masks(
                    logits, iou_scores[passing][:, None], full_size, crop_boxes[crop].tolist(),
                    pred_iou_thresh, stability_score_thresh, mask_threshold, stability_score_offset,
                )  # fmt: skip
                rles += batch[0]
                scores.append(batch[1])
                boxes.append(batch[2])
            if on_batch is not None:
                on_batch()
    if not rles:
        return {"masks": [], "scores": torch.zeros(0), "bounding_boxes": torch.zeros(0, 4, dtype=torch.int64)}
    masks, kept_scores, _, kept_boxes = image_processor.post_process_for_mask_generation(
        rles, torch.cat(scores), torch.cat(boxes), crops_nms_thresh
    )
    return {"masks": masks, "scores": kept_scores, "bounding_boxes": kept_boxes}
