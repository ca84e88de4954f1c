"""Filling small holes in predicted masks (original: `sam2.utils.misc.fill_holes_in_mask_scores`).

The original needs its CUDA extension or OpenCV for the connected components; this is the same
8-connected labelling in NumPy, so it runs anywhere.
"""

import numpy as np
import torch

# Logit given to a filled hole: just above the 0 threshold, as in the original.
FILLED_HOLE_LOGIT = 0.1
# The 4 neighbour offsets that, with their mirror images, make 8-connectivity.
_NEIGHBOUR_OFFSETS = ((0, 1), (1, -1), (1, 0), (1, 1))


def fill_holes(mask_logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """Sets the logits of every background region (logits <= 0, 8-connected) of at most
    `max_area` pixels to 0.1. mask_logits: (..., H, W); returns a new tensor of the same shape."""
    if max_area <= 0:
        return mask_logits
    background = (mask_logits <= 0).reshape(-1, *mask_logits.shape[-2:]).cpu().numpy()
    is_hole = np.stack([component_areas(plane) <= max_area for plane in background]) & background
    is_hole = torch.from_numpy(is_hole).reshape(mask_logits.shape).to(mask_logits.device)
    return torch.where(is_hole, torch.tensor(FILLED_HOLE_LOGIT, dtype=mask_logits.dtype), mask_logits)


def component_areas(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) int64: the pixel count of each True pixel's 8-connected component,
    0 on False pixels."""
    height, width = mask.shape
    index = np.arange(height * width).reshape(height, width)
    starts, ends = [], []
    for dy, dx in _NEIGHBOUR_OFFSETS:
        # pairs (y, x) -> (y + dy, x + dx) that are both inside the image and both True
        rows = slice(0, height - dy)
        cols = slice(max(0, -dx), width - max(0, dx))
        shifted_cols = slice(max(0, dx), width - max(0, -dx))
        both = mask[rows, cols] & mask[dy:, shifted_cols]
        starts.append(index[rows, cols][both])
        ends.append(index[dy:, shifted_cols][both])
    roots = _union_find_roots(height * width, np.concatenate(starts), np.concatenate(ends))
    areas = np.bincount(roots[mask.ravel()], minlength=height * width)
    return np.where(mask.ravel(), areas[roots], 0).reshape(height, width)


def _union_find_roots(num_nodes: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The smallest node index of each node's connected component, by repeated hooking of the
    larger root onto the smaller one and path halving, vectorised over all edges."""
    parent = np.arange(num_nodes)
    while True:
        root_a, root_b = parent[starts], parent[ends]
        differ = root_a != root_b
        if not differ.any():
            return parent
        low = np.minimum(root_a[differ], root_b[differ])
        high = np.maximum(root_a[differ], root_b[differ])
        np.minimum.at(parent, high, low)
        # compress every path to its root before the next round
        while True:
            grandparent = parent[parent]
            if np.array_equal(grandparent, parent):
                break
            parent = grandparent
