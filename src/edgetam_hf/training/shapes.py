"""Random scenes of flat shapes on shaded backgrounds, like the project's sample media.

The tiny bundled model is trained on these (scripts/train_tiny_model.py) and evaluated on scenes
from other seeds; the tests train on them too. Each scene is a shaded background with a few discs,
ellipses, rectangles and triangles of random colours; shapes drawn later hide earlier ones, and the
ground truth is what stays visible of each.
"""

import numpy as np
from PIL import Image, ImageDraw

SHAPE_KINDS = ("ellipse", "rectangle", "triangle")
MIN_VISIBLE_FRACTION = 0.004  # of the image: smaller remnants of a hidden shape are not objects


def render_shapes_scene(rng: np.random.Generator, size: tuple[int, int], max_shapes: int = 3, min_objects: int = 1):
    """One scene: `(image, masks)`, a PIL RGB image of `size` (width, height) and a bool array
    (num_objects, height, width) of the visible part of each shape, with at least `min_objects`
    objects (scenes with fewer are drawn again: with two or more, a click must choose)."""
    if not 1 <= min_objects <= max_shapes:
        raise ValueError(f"min_objects must be in [1, max_shapes={max_shapes}], got {min_objects}")
    width, height = size
    while True:
        image = Image.fromarray(_shaded_background(rng, width, height))
        visible = []
        for _ in range(int(rng.integers(min_objects, max_shapes + 1))):
            shape = Image.new("L", size, 0)
            _draw_random_shape(ImageDraw.Draw(shape), rng, width, height)
            shape_mask = np.asarray(shape) > 0
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            image.paste(colour, mask=shape)
            visible = [mask & ~shape_mask for mask in visible] + [shape_mask]
        objects = [mask for mask in visible if mask.mean() >= MIN_VISIBLE_FRACTION]
        if len(objects) >= min_objects:
            return image, np.stack(objects)


def _shaded_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8: a random base colour with a linear ramp per channel."""
    base = rng.uniform(20, 200, 3)
    ramp_x, ramp_y = rng.uniform(-60, 60, 3), rng.uniform(-60, 60, 3)
    xs = np.linspace(0, 1, width)[None, :, None]
    ys = np.linspace(0, 1, height)[:, None, None]
    return np.clip(base + ramp_x * xs + ramp_y * ys, 0, 255).astype(np.uint8)


def _draw_random_shape(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int) -> None:
    side = min(width, height)
    extent_x, extent_y = rng.uniform(0.12, 0.45, 2) * side
    centre_x, centre_y = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
    box = (centre_x - extent_x / 2, centre_y - extent_y / 2, centre_x + extent_x / 2, centre_y + extent_y / 2)
    kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
    if kind == "ellipse":
        draw.ellipse(box, fill=255)
    elif kind == "rectangle":
        draw.rectangle(box, fill=255)
    else:
        corners = rng.uniform(-0.5, 0.5, (3, 2)) * (extent_x, extent_y) * 2 + (centre_x, centre_y)
        draw.polygon([tuple(corner) for corner in corners], fill=255)
