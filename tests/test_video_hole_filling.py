"""Hole filling of predicted masks (the original's `fill_holes_in_mask_scores`) without OpenCV."""

from collections import deque

import numpy as np
import pytest
import torch

from edgetam_hf.video.hole_filling import component_areas, fill_holes


def areas_by_breadth_first_search(mask: np.ndarray) -> np.ndarray:
    """8-connected component sizes, the plain way (what cv2.connectedComponentsWithStats gives)."""
    height, width = mask.shape
    areas = np.zeros(mask.shape, dtype=np.int64)
    seen = np.zeros(mask.shape, dtype=bool)
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        component, queue = [], deque([start])
        seen[start] = True
        while queue:
            y, x = queue.popleft()
            component.append((y, x))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
        for pixel in component:
            areas[pixel] = len(component)
    return areas


@pytest.mark.parametrize("density", [0.2, 0.45, 0.6])
def test_component_areas_match_breadth_first_search(density):
    mask = np.random.default_rng(int(density * 100)).random((37, 53)) < density
    assert np.array_equal(component_areas(mask), areas_by_breadth_first_search(mask))


def test_diagonal_neighbours_are_connected():
    mask = np.eye(5, dtype=bool)
    assert component_areas(mask)[mask].tolist() == [5] * 5


def test_only_small_background_regions_are_filled():
    logits = torch.full((1, 1, 12, 12), 5.0)
    logits[0, 0, 2:4, 2:4] = -3.0  # a 4-pixel hole
    logits[0, 0, 6:9, 6:9] = 0.0  # a 9-pixel hole (logit 0 counts as background)
    logits[0, 0, 11, :] = -1.0  # a 12-pixel strip along the border
    filled = fill_holes(logits, max_area=9)
    assert bool((filled[0, 0, 2:4, 2:4] == 0.1).all()) and bool((filled[0, 0, 6:9, 6:9] == 0.1).all())
    assert bool((filled[0, 0, 11] == -1.0).all())
    unchanged = torch.ones_like(logits, dtype=torch.bool)
    unchanged[0, 0, 2:4, 2:4] = unchanged[0, 0, 6:9, 6:9] = False
    assert torch.equal(filled[unchanged], logits[unchanged])
    assert fill_holes(logits, max_area=0) is logits
