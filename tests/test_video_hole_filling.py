"""Hole filling of predicted masks (the original's `fill_holes_in_mask_scores`) without OpenCV."""

from collections import deque

import numpy as np
import pytest
import torch

from edgetam_hf.video.hole_filling import fill_holes, small_component_mask


def areas_by_breadth_first_search(mask: np.ndarray) -> np.ndarray:
    """8-connected component sizes, the plain way (what cv2.connectedComponentsWithStats gives)."""
    height, width = mask.shape
    areas = np.zeros(mask.shape, dtype=np.int64)
    seen = np.zeros(mask.shape, dtype=bool)
    for start in zip(*np.nonzero(mask), strict=True):
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


def _small_components(mask: np.ndarray, max_area: int) -> np.ndarray:
    return small_component_mask(torch.from_numpy(mask)[None, None], max_area)[0, 0].numpy()


@pytest.mark.parametrize("max_area", [1, 2, 8, 30])
@pytest.mark.parametrize("density", [0.2, 0.45, 0.6])
def test_small_components_match_breadth_first_search(density, max_area):
    mask = np.random.default_rng(int(density * 100)).random((37, 53)) < density
    areas = areas_by_breadth_first_search(mask)
    assert np.array_equal(_small_components(mask, max_area), mask & (areas <= max_area))


def test_every_plane_of_a_batch_is_labelled_on_its_own():
    masks = np.random.default_rng(3).random((4, 1, 29, 31)) < 0.5
    batched = small_component_mask(torch.from_numpy(masks), 8).numpy()
    for plane, result in zip(masks, batched, strict=True):
        assert np.array_equal(result[0], plane[0] & (areas_by_breadth_first_search(plane[0]) <= 8))


def test_diagonal_neighbours_are_connected():
    mask = np.eye(5, dtype=bool)
    assert _small_components(mask, 5)[mask].all() and not _small_components(mask, 4).any()


def test_a_long_serpentine_is_one_component():
    # Full rows 0, 2, 4, ... joined at alternate ends: one path of 71 pixels, so long that a few
    # rounds of label spreading leave it in pieces, none of which may pass for a small component.
    mask = np.zeros((11, 11), dtype=bool)
    mask[0::2, :] = True
    mask[1::4, -1] = True
    mask[3::4, 0] = True
    assert areas_by_breadth_first_search(mask).max() == mask.sum() == 71
    for max_area in (3, 8, 20, 70):
        assert not _small_components(mask, max_area).any()
    assert _small_components(mask, 71).sum() == 71


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
