"""Filling small holes in predicted masks (original: `sam2.utils.misc.fill_holes_in_mask_scores`).

The original needs its CUDA extension or OpenCV to label connected components. Only components
of at most `max_area` pixels matter, and those can be found without labelling the whole mask:
this is a few 3x3 poolings in torch, on the masks' device, for every mask of the batch at once.
"""

import torch
import torch.nn.functional as F

# Logit given to a filled hole: just above the 0 threshold, as in the original.
FILLED_HOLE_LOGIT = 0.1


def fill_holes(mask_logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """Sets the logits of every background region (logits <= 0, 8-connected) of at most
    `max_area` pixels to 0.1. mask_logits: (..., H, W); returns a new tensor of the same shape."""
    if max_area <= 0:
        return mask_logits
    background = (mask_logits <= 0).reshape(-1, 1, *mask_logits.shape[-2:])  # (planes, 1, H, W)
    is_hole = small_component_mask(background, max_area).reshape(mask_logits.shape)
    return torch.where(is_hole, torch.tensor(FILLED_HOLE_LOGIT, dtype=mask_logits.dtype), mask_logits)


def small_component_mask(mask: torch.Tensor, max_area: int) -> torch.Tensor:
    """(planes, 1, H, W) bool -> the True pixels whose 8-connected component has at most
    `max_area` pixels.

    Each True pixel starts with its own index as label, and `max_area - 1` rounds of "take the
    smallest label among the 8 neighbours" (through True pixels only) give every component of
    at most `max_area` pixels (so of diameter < max_area) one label. A label can also be shared
    by part of a larger component; but a set of pixels sharing a label with no True neighbour of
    another label is a whole component, so a label is a small component exactly when it counts
    at most `max_area` pixels and none of them borders another label.
    """
    planes, _, height, width = mask.shape
    num_pixels = height * width
    # Labels as float32 for the pooling: exact below 2**24 pixels a plane.
    index = torch.arange(num_pixels, device=mask.device, dtype=torch.float32).reshape(1, 1, height, width)
    outside = float(num_pixels)  # larger than any label: never the smallest
    labels = torch.where(mask, index, outside)
    for _ in range(max_area - 1):
        spread = torch.where(mask, _smallest_neighbour(labels), outside)
        if torch.equal(spread, labels):
            break
        labels = spread
    largest_neighbour = F.max_pool2d(torch.where(mask, labels, -1.0), 3, stride=1, padding=1)
    borders_other = mask & ((_smallest_neighbour(labels) != labels) | (largest_neighbour != labels))

    # One id per (plane, label); the pixels outside the mask share a spare id.
    plane_offset = torch.arange(planes, device=mask.device).reshape(-1, 1, 1, 1) * (num_pixels + 1)
    ids = (labels.long() + plane_offset).flatten()
    num_ids = planes * (num_pixels + 1)
    area = torch.bincount(ids, minlength=num_ids)
    num_bordering = torch.bincount(ids, weights=borders_other.flatten().float(), minlength=num_ids)
    is_small = (area <= max_area) & (num_bordering == 0)
    return mask & is_small[ids].reshape(mask.shape)


def _smallest_neighbour(labels: torch.Tensor) -> torch.Tensor:
    """The smallest label in each pixel's 3x3 neighbourhood (itself included)."""
    return -F.max_pool2d(-labels, 3, stride=1, padding=1)
