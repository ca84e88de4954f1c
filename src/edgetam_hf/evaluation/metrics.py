"""J (region similarity) and F (boundary F-measure) of one object on one frame, as the DAVIS 2017
benchmark defines them (Perazzi et al. 2016; Pont-Tuset et al. 2017).

Written in NumPy alone: the reference code dilates with OpenCV and builds its disk with
scikit-image, two heavy dependencies for one morphological operation. The disk and the dilation
below are the same sets of pixels, so the scores are the same numbers (tests/test_evaluate.py
compares them with vos-benchmark's).
"""

import math

import numpy as np

# The boundary tolerance as a fraction of the image diagonal (DAVIS: 0.008, 8 pixels at 480p).
BOUNDARY_TOLERANCE = 0.008


def region_similarity(prediction: np.ndarray, truth: np.ndarray) -> float:
    """J: the intersection over union of two (height, width) bool masks; 1 when both are empty
    (an object correctly predicted absent)."""
    intersection = np.count_nonzero(prediction & truth)
    union = np.count_nonzero(prediction | truth)
    return 1.0 if union == 0 else intersection / union


def boundary_f_measure(prediction: np.ndarray, truth: np.ndarray) -> float:
    """F: the harmonic mean of the precision and recall of the predicted boundary pixels, a pixel
    matching when the other boundary passes within the tolerance disk of it."""
    radius = int(np.ceil(BOUNDARY_TOLERANCE * np.linalg.norm(prediction.shape)))
    predicted_boundary = boundary_map(prediction)
    true_boundary = boundary_map(truth)
    num_predicted = np.count_nonzero(predicted_boundary)
    num_true = np.count_nonzero(true_boundary)
    if num_predicted == 0 or num_true == 0:
        # No boundary on one side: perfect if neither has one, else precision or recall is 0.
        return 1.0 if num_predicted == num_true else 0.0
    precision = np.count_nonzero(predicted_boundary & dilate_with_disk(true_boundary, radius)) / num_predicted
    recall = np.count_nonzero(true_boundary & dilate_with_disk(predicted_boundary, radius)) / num_true
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """(height, width) bool: the pixels whose right, lower or lower-right neighbour differs from
    them (a one-pixel boundary offset half a pixel towards the origin, as DAVIS's seg2bmap). The
    last row compares only to the right, the last column only downwards, the corner with nothing."""
    mask = mask.astype(bool)
    right = np.zeros_like(mask)
    right[:, :-1] = mask[:, 1:]
    below = np.zeros_like(mask)
    below[:-1, :] = mask[1:, :]
    below_right = np.zeros_like(mask)
    below_right[:-1, :-1] = mask[1:, 1:]
    boundary = (mask ^ right) | (mask ^ below) | (mask ^ below_right)
    boundary[-1, :] = mask[-1, :] ^ right[-1, :]
    boundary[:, -1] = mask[:, -1] ^ below[:, -1]
    boundary[-1, -1] = False
    return boundary


def dilate_with_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by the disk {(dy, dx): dy^2 + dx^2 <= radius^2} (scikit-image's `disk`),
    pixels outside the image counting as background (OpenCV's default border for dilation).

    The disk is a stack of horizontal runs, one per row offset dy of half-width
    floor(sqrt(radius^2 - dy^2)): each run is a sliding-window OR along rows (a cumulative sum),
    shifted by dy, so the cost is O(radius) passes instead of O(radius^2)."""
    height, width = mask.shape
    # Prefix sums with a zero column in front: a window [x - w, x + w] sums to prefix[x + w + 1] - prefix[x - w].
    prefix = np.zeros((height, width + 1), dtype=np.int32)
    np.cumsum(mask, axis=1, out=prefix[:, 1:])
    columns = np.arange(width)
    runs = {}
    dilated = np.zeros_like(mask, dtype=bool)
    for dy in range(-radius, radius + 1):
        half_width = math.isqrt(radius * radius - dy * dy)
        if half_width not in runs:
            right_end = np.minimum(columns + half_width + 1, width)
            left_end = np.maximum(columns - half_width, 0)
            runs[half_width] = (prefix[:, right_end] - prefix[:, left_end]) > 0
        run = runs[half_width]
        # Output row y takes the run of row y + dy (the disk is symmetric, so + or - is the same).
        if dy >= 0:
            dilated[: height - dy] |= run[dy:]
        else:
            dilated[-dy:] |= run[: height + dy]
    return dilated
