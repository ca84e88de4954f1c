"""Prompts sampled from ground-truth masks, as SAM 2's training samples them.

A click is a pixel drawn uniformly from the object; a box is the mask's bounding box with each
coordinate moved uniformly by up to 10% of the box side, at most 20 pixels (`sam2/utils/misc.py`,
`sample_box_points`). Coordinates are (x, y) in pixels of the mask.
"""

import numpy as np

from ..conventions import LABEL_BOX_BOTTOM_RIGHT as BOX_BOTTOM_RIGHT
from ..conventions import LABEL_BOX_TOP_LEFT as BOX_TOP_LEFT
from ..conventions import LABEL_POSITIVE as POSITIVE_CLICK
BOX_NOISE_FRACTION, BOX_NOISE_MAX_PIXELS = 0.1, 20.0


def sample_click(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A pixel of `mask` (height, width), uniformly; the centre of the image for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (mask.shape[1] / 2, mask.shape[0] / 2)
    index = int(rng.integers(len(xs)))
    return (float(xs[index]), float(ys[index]))


def sample_box(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """The noisy bounding box (x0, y0, x1, y1) of `mask`, kept inside the image and ordered."""
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (0.0, 0.0, float(width), float(height))
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)
    sides = np.array([box[2] - box[0], box[3] - box[1]] * 2)
    largest_shift = np.minimum(sides * BOX_NOISE_FRACTION, BOX_NOISE_MAX_PIXELS)
    box = np.clip(box + rng.uniform(-1, 1, 4) * largest_shift, 0, [width - 1, height - 1] * 2)
    x0, x1 = sorted(box[[0, 2]])
    y0, y1 = sorted(box[[1, 3]])
    return (float(x0), float(y0), float(x1), float(y1))


def sample_box_prompt(mask: np.ndarray, rng: np.random.Generator) -> tuple[list, list]:
    """One object's box as points and labels: two corner points labelled 2 and 3, the way the
    original feeds boxes to the model."""
    x0, y0, x1, y1 = sample_box(mask, rng)
    return [[x0, y0], [x1, y1]], [BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]


def sample_click_prompt(mask: np.ndarray, rng: np.random.Generator) -> tuple[list, list]:
    """One object's single positive click as points and labels."""
    return [list(sample_click(mask, rng))], [POSITIVE_CLICK]
