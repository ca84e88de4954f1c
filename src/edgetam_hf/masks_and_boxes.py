"""Mask and box operations of automatic mask generation, as `sam2/utils/amg.py` and torchvision compute them.

Run-length encodings (RLE) are the original's uncompressed COCO format: `{"size": [height, width],
"counts": [...]}` in column-major order, first count for zeros; `mask_generation.py` adds to each
the `"crop_box"` [x0, y0, x1, y1] its mask came from, which the duplicate removal needs. Between the
steps the counts are a tensor (see `masks_to_rle`); the pipeline's output has lists.
"""

import torch
import torch.nn.functional as F

# Boxes within this many pixels of a crop's edge (and not of the image's edge) are cut by the crop.
CROP_EDGE_TOLERANCE = 20.0


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) int64 tight boxes [x0, y0, x1, y1] (inclusive); [0, 0, 0, 0] for an empty mask."""
    if masks.shape[0] == 0:
        return torch.zeros(0, 4, dtype=torch.int64, device=masks.device)
    left, right = _first_and_last(masks.any(dim=-2))
    top, bottom = _first_and_last(masks.any(dim=-1))
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    empty = (right < left) | (bottom < top)
    return boxes * (~empty)[:, None]


def _first_and_last(occupied: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, L) bool -> first and last occupied index per row (L and 0 for an empty row)."""
    length = occupied.shape[-1]
    index = torch.arange(length, device=occupied.device)
    first = torch.where(occupied, index, length).amin(dim=-1)
    last = (occupied * index).amax(dim=-1)
    return first, last


def is_box_near_crop_edge(
    boxes: torch.Tensor, crop_box, image_box, atol: float = CROP_EDGE_TOLERANCE
) -> torch.Tensor:
    """(N, 4) boxes in crop coordinates -> (N,) bool: some side lies on a crop edge that is not an image edge."""
    boxes = uncrop_boxes(boxes, crop_box).float()
    crop_box = torch.as_tensor(crop_box, dtype=torch.float32, device=boxes.device)
    image_box = torch.as_tensor(image_box, dtype=torch.float32, device=boxes.device)
    near_crop_edge = torch.isclose(boxes, crop_box[None], atol=atol, rtol=0)
    near_image_edge = torch.isclose(boxes, image_box[None], atol=atol, rtol=0)
    return (near_crop_edge & ~near_image_edge).any(dim=1)


def uncrop_boxes(boxes: torch.Tensor, crop_box) -> torch.Tensor:
    x0, y0 = int(crop_box[0]), int(crop_box[1])
    return boxes + torch.tensor([[x0, y0, x0, y0]], device=boxes.device)


def uncrop_masks(masks: torch.Tensor, crop_box, image_height: int, image_width: int) -> torch.Tensor:
    """(N, crop_h, crop_w) -> (N, image_height, image_width), zero outside the crop."""
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    if (x0, y0, x1, y1) == (0, 0, image_width, image_height):
        return masks
    pad_x, pad_y = image_width - (x1 - x0), image_height - (y1 - y0)
    return F.pad(masks, (x0, pad_x - x0, y0, pad_y - y0), value=0)


def box_area(box) -> int:
    x0, y0, x1, y1 = box
    return (x1 - x0) * (y1 - y0)


def masks_to_rle(masks: torch.Tensor) -> list[dict]:
    """(N, H, W) bool -> one uncompressed COCO RLE per mask (column-major runs, zeros first).

    All masks at once, like the original's `mask_to_rle_pytorch`: per mask the run boundaries are
    0, (a second 0 when the mask starts with a 1, for an empty first run of zeros), every pixel
    where the value changes, and H * W; the runs are their differences. The run lengths stay an
    int64 tensor until the output (`rle_with_list_counts`): transformers' pipeline walks every
    Python list it passes between its steps, element by element.
    """
    num_masks, height, width = masks.shape
    column_major = masks.transpose(1, 2).reshape(num_masks, height * width)
    mask_index, change = torch.nonzero(column_major[:, 1:] != column_major[:, :-1], as_tuple=True)
    starts_with_one = column_major[:, 0].long()
    changes_per_mask = torch.bincount(mask_index, minlength=num_masks)
    bounds_per_mask = changes_per_mask + starts_with_one + 2
    first_bound = torch.cumsum(bounds_per_mask, 0) - bounds_per_mask
    bounds = masks.new_zeros(int(bounds_per_mask.sum()), dtype=torch.long)
    bounds[first_bound + bounds_per_mask - 1] = height * width
    first_change = torch.cumsum(changes_per_mask, 0) - changes_per_mask
    rank = torch.arange(len(change), device=masks.device) - first_change[mask_index]
    bounds[first_bound[mask_index] + 1 + starts_with_one[mask_index] + rank] = change + 1
    runs = (bounds[1:] - bounds[:-1]).cpu()
    # runs across the border of two masks are skipped: each mask's runs start at its first bound
    return [
        {"size": [height, width], "counts": runs[start : start + length - 1]}
        for start, length in zip(first_bound.tolist(), bounds_per_mask.tolist())
    ]


def rle_with_list_counts(rle: dict) -> dict:
    """The RLE with its counts as a list of ints, the COCO format."""
    counts = rle["counts"]
    return {**rle, "counts": counts.tolist() if isinstance(counts, torch.Tensor) else list(counts)}


def rle_to_mask(rle: dict) -> torch.Tensor:
    """Uncompressed COCO RLE (counts a list or a tensor) -> (H, W) bool tensor."""
    height, width = rle["size"]
    counts = torch.as_tensor(rle["counts"], dtype=torch.int64)
    values = torch.arange(len(counts)) % 2 == 1  # runs alternate, zeros first
    column_major = torch.repeat_interleave(values, counts)
    if column_major.numel() != height * width:
        raise ValueError(f"RLE counts sum to {column_major.numel()} pixels, size {height}x{width} needs {height * width}")
    return column_major.reshape(width, height).t().contiguous()


def box_iou_with(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one [x0, y0, x1, y1] box with each of (N, 4) boxes, in the order of operations of
    torchvision's NMS kernel (so that the comparisons with a threshold agree with it)."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    widths = (torch.minimum(boxes[:, 2], box[2]) - torch.maximum(boxes[:, 0], box[0])).clamp(min=0)
    heights = (torch.minimum(boxes[:, 3], box[3]) - torch.maximum(boxes[:, 1], box[1])).clamp(min=0)
    intersections = widths * heights
    return intersections / (area + areas - intersections)


def non_maximum_suppression(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS as `torchvision.ops.nms` computes it: indices of the kept boxes, best score first.

    Ties in score keep their input order (torchvision's CPU kernel sorts stably). The original calls
    `batched_nms` with one category, which is this NMS; past 1000 boxes torchvision re-sorts the
    kept indices without stability, which can reorder masks of equal score, never the set kept.
    """
    boxes, scores = boxes.detach().float().cpu(), scores.detach().cpu()
    order = torch.sort(scores, descending=True, stable=True).indices
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    kept = []
    for index in order.tolist():
        if suppressed[index]:
            continue
        kept.append(index)
        # the kernel compares the float IoU with the threshold as a double
        suppressed |= box_iou_with(boxes[index], boxes).double() > iou_threshold
    return torch.tensor(kept, dtype=torch.int64)
