"""Prompts of one image -> the prompt decoder graph's `point_coords` / `point_labels`, in NumPy.

The numbers are `EdgeTamProcessor`'s (a point (x, y) in image pixels becomes `(x / width,
y / height) * image_size` in float32, in that order) and the tokens are those the prompt encoder
embeds: per object, the box as two corners (labels 2, 3), then the clicks padded across objects
with label -1, then one padding point (label -1). A mask prompt alone has no token.
"""

import math

import numpy as np

from ..conventions import BOX_CORNER_LABELS
from ..conventions import LABEL_PADDING as PADDING_LABEL
from ..conventions import PROMPT_LABELS as _CLICK_LABELS


def prompt_tokens(input_points, input_labels, input_boxes, image_size_hw, model_size: int):
    """Returns `(point_coords (num_objects, num_tokens, 2) float32, point_labels (num_objects, num_tokens) int64)`.

    Args:
        input_points: [object][point][x, y] in image pixels, or None.
        input_labels: [object][point]: 1 positive, 0 negative (2 / 3 box corners, -1 padding);
            defaults to 1 for every point.
        input_boxes: [object][x0, y0, x1, y1] in image pixels, or None; box j belongs to object j.
        image_size_hw: (height, width) of the image.
        model_size: side of the model's square input (1024).
    """
    height, width = image_size_hw
    clicks, click_labels = _checked_clicks(input_points, input_labels, height, width)
    boxes = _checked_boxes(input_boxes, height, width)
    if clicks is not None and boxes is not None and len(clicks) != len(boxes):
        raise ValueError(
            f"input_points has {len(clicks)} objects but input_boxes has {len(boxes)}; "
            "object j is input_points[j] with input_boxes[j]"
        )
    num_objects = len(clicks) if clicks is not None else len(boxes) if boxes is not None else 0
    coordinate_parts, label_parts = [], []
    if boxes is not None:
        coordinate_parts.append(boxes.reshape(num_objects, 2, 2))
        label_parts.append(np.broadcast_to(np.array(BOX_CORNER_LABELS, dtype=np.int64), (num_objects, 2)))
    if clicks is not None:
        coordinate_parts.append(clicks)
        label_parts.append(click_labels)
    if not coordinate_parts:
        return np.zeros((0, 0, 2), dtype=np.float32), np.zeros((0, 0), dtype=np.int64)

    coordinates = np.concatenate(coordinate_parts, axis=1)
    labels = np.concatenate(label_parts, axis=1)
    if coordinates.shape[1] == 0:  # objects given with no click and no box: no token at all
        return coordinates, labels
    # Scaled in float32 as the processor scales: divide by the side, then multiply.
    scaled = coordinates / np.array([width, height], dtype=np.float32) * np.float32(model_size)
    scaled = np.where((labels == PADDING_LABEL)[..., None], coordinates, scaled).astype(np.float32)
    padding_point = np.zeros((num_objects, 1, 2), dtype=np.float32)
    padding_label = np.full((num_objects, 1), PADDING_LABEL, dtype=np.int64)
    return np.concatenate([scaled, padding_point], axis=1), np.concatenate([labels, padding_label], axis=1)


def _checked_clicks(points, labels, height: int, width: int):
    """[object][point][x, y] -> (num_objects, max_points, 2) float32 padded with label -1, and labels."""
    if points is None:
        if labels is not None:
            raise ValueError("input_labels were given without input_points")
        return None, None
    points = [[list(point) for point in obj] for obj in points]
    if not points:
        raise ValueError("input_points holds no object; give [object][point][x, y]")
    if labels is None:
        labels = [[1] * len(obj) for obj in points]
    labels = [list(obj) for obj in labels]
    if [len(obj) for obj in labels] != [len(obj) for obj in points]:
        raise ValueError("input_labels must have one label per point of input_points: [object][point]")
    num_points = max(len(obj) for obj in points)
    coordinates = np.zeros((len(points), num_points, 2), dtype=np.float32)
    padded_labels = np.full((len(points), num_points), PADDING_LABEL, dtype=np.int64)
    for j, (object_points, object_labels) in enumerate(zip(points, labels)):
        for k, (point, label) in enumerate(zip(object_points, object_labels)):
            if len(point) != 2 or not all(isinstance(v, (int, float, np.number)) and math.isfinite(v) for v in point):
                raise ValueError(f"input_points[{j}][{k}] must be two finite numbers (x, y); got {point!r}")
            if label not in (*_CLICK_LABELS, PADDING_LABEL):
                raise ValueError(
                    f"input_labels[{j}][{k}] is {label!r}; expected 1 (positive), 0 (negative), 2 / 3 (box corners) "
                    "or -1 (padding)"
                )
            if label != PADDING_LABEL and not (0 <= point[0] <= width and 0 <= point[1] <= height):
                raise ValueError(
                    f"input_points[{j}][{k}] = {point} lies outside the image: x must be in [0, {width}] and y in "
                    f"[0, {height}] (image pixels)"
                )
            coordinates[j, k] = point
            padded_labels[j, k] = int(label)
    return coordinates, padded_labels


def _checked_boxes(boxes, height: int, width: int):
    if boxes is None:
        return None
    try:
        boxes = np.asarray(boxes, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f"input_boxes must be [object][x0, y0, x1, y1]: {error}") from error
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] == 0:
        raise ValueError(f"input_boxes must have shape (num_objects, 4) as [object][x0, y0, x1, y1]; got {boxes.shape}")
    if not np.isfinite(boxes).all() or (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise ValueError("input_boxes must hold finite (x0, y0, x1, y1) with x1 >= x0 and y1 >= y0")
    if (boxes[:, [0, 2]] < 0).any() or (boxes[:, [0, 2]] > width).any() or (boxes[:, [1, 3]] < 0).any() or (boxes[:, [1, 3]] > height).any():
        raise ValueError(f"input_boxes must lie inside the image: x in [0, {width}], y in [0, {height}]")
    return boxes
