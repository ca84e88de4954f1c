"""Filling small holes of predicted masks in NumPy (original: `fill_holes_in_mask_scores`), for
the onnxruntime tracker; `edgetam_hf.video.hole_filling` does the same in torch.

A background pixel (logit <= 0) lies in a hole when its 8-connected background region has at most
`max_area` pixels. Such a region has a diameter below `max_area`, so `max_area - 1` rounds of
"every background pixel takes the smallest index among its background neighbours" give all of it
one index; a set of pixels sharing an index and touching no background pixel of another index
is then a whole region, and it is a hole when it counts at most `max_area` pixels.
"""

import numpy as np

# Logit given to a filled hole: just above the 0 threshold, as in the original.
FILLED_HOLE_LOGIT = np.float32(0.1)


def fill_holes(mask_logits: np.ndarray, max_area: int) -> np.ndarray:
    """(..., H, W) float32 logits -> a copy whose small background regions are set to 0.1."""
    if max_area <= 0:
        return mask_logits
    planes = mask_logits.reshape(-1, *mask_logits.shape[-2:])
    filled = np.stack([np.where(_small_regions(plane <= 0, max_area), FILLED_HOLE_LOGIT, plane) for plane in planes])
    return filled.reshape(mask_logits.shape)


def _small_regions(background: np.ndarray, max_area: int) -> np.ndarray:
    """(H, W) bool -> the True pixels whose 8-connected region of True pixels has <= max_area pixels."""
    height, width = background.shape
    beyond = height * width  # an index larger than any pixel's
    index = np.where(background, np.arange(height * width).reshape(height, width), beyond)
    for _ in range(max_area - 1):
        spread = np.where(background, _neighbourhood(index, np.minimum, beyond), beyond)
        if np.array_equal(spread, index):
            break
        index = spread
    smallest_around = _neighbourhood(index, np.minimum, beyond)
    largest_around = _neighbourhood(np.where(background, index, -1), np.maximum, -1)
    touches_other = background & ((smallest_around != index) | (largest_around != index))
    counts = np.bincount(index.ravel(), minlength=beyond + 1)
    touching = np.bincount(index.ravel(), weights=touches_other.ravel(), minlength=beyond + 1)
    is_small = (counts <= max_area) & (touching == 0)
    return background & is_small[index]


def _neighbourhood(values: np.ndarray, reduce, fill) -> np.ndarray:
    """`reduce` over each pixel's 3x3 neighbourhood (itself included), `fill` outside the image."""
    height, width = values.shape
    padded = np.pad(values, 1, constant_values=fill)
    result = values.copy()
    for dy in range(3):
        for dx in range(3):
            result = reduce(result, padded[dy : dy + height, dx : dx + width])
    return result
