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
            kind, corners = _random_shape(rng, width, height)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            visible = _paint_shape(image, visible, kind, corners, colour)
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


def render_shapes_clip(
    rng: np.random.Generator,
    size: tuple[int, int],
    num_frames: int,
    max_shapes: int = 3,
    min_objects: int = 1,
    max_speed: float = 0.04,
    max_turn: float = 0.0,
    wall_margin: float | None = None,
):
    """A clip of moving shapes: `(frames, masks)`, `num_frames` PIL RGB images of `size` (width,
    height) and a bool array (num_frames, num_objects, height, width) of the visible part of each
    object on each frame.

    Scenes as `render_shapes_scene` draws them, each shape moving at its own constant velocity of at
    most `max_speed` of the image side per frame (so shapes pass in front of one another and leave
    the image) and turning about its centre at its own rate of at most `max_turn` radians per frame.
    With `wall_margin`, a shape's centre bounces off walls that far outside the image (a fraction
    of each side), so a shape that leaves comes back. The objects are the shapes visible on frame 0
    (at least `min_objects`); on a later frame an object's mask may be empty (hidden or gone): the
    clip's occlusions.
    """
    if not 1 <= min_objects <= max_shapes:
        raise ValueError(f"min_objects must be in [1, max_shapes={max_shapes}], got {min_objects}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    width, height = size
    while True:
        background = _shaded_background(rng, width, height)
        shapes = []
        for _ in range(int(rng.integers(min_objects, max_shapes + 1))):
            kind, corners = _random_shape(rng, width, height)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            velocity = rng.uniform(-max_speed, max_speed, 2) * min(width, height)  # pixels per frame, (x, y)
            turn = rng.uniform(-max_turn, max_turn) if max_turn > 0 else 0.0  # radians per frame
            shapes.append((kind, corners, colour, velocity, turn))
        frames, visible_per_frame = [], []
        for frame_idx in range(num_frames):
            image = Image.fromarray(background)
            visible = []
            for kind, corners, colour, velocity, turn in shapes:
                moved = _moved_corners(corners, frame_idx * velocity, (width, height), wall_margin)
                visible = _paint_shape(image, visible, *_turned(kind, moved, frame_idx * turn), colour)
            frames.append(image)
            visible_per_frame.append(np.stack(visible))
        masks = np.stack(visible_per_frame)  # (num_frames, num_shapes, height, width)
        is_object = masks[0].mean(axis=(1, 2)) >= MIN_VISIBLE_FRACTION
        if is_object.sum() >= min_objects:
            return frames, masks[:, is_object]


def _moved_corners(corners: np.ndarray, shift: np.ndarray, size: tuple[int, int], wall_margin: float | None) -> np.ndarray:
    """`corners` moved by `shift` (x, y) pixels; with `wall_margin`, the centre's path folded back
    between walls `wall_margin` of each side outside the image (a shape bouncing off them)."""
    if wall_margin is None:
        return corners + shift
    centre = corners.mean(axis=0)
    low = -wall_margin * np.asarray(size, dtype=np.float64)
    span = np.asarray(size, dtype=np.float64) - 2 * low
    travelled = np.mod(centre + shift - low, 2 * span)  # a triangle wave of period 2 * span
    folded = low + span - np.abs(travelled - span)
    return corners + (folded - centre)


def _turned(kind: str, corners: np.ndarray, angle: float) -> tuple[str, np.ndarray]:
    """The shape turned by `angle` radians about its centre: a polygon's (n, 2) vertices, or the
    shape itself when `angle` is 0 (an ellipse becomes a 32-gon, a rectangle its four corners)."""
    if angle == 0:
        return kind, corners
    if kind == "ellipse":
        (x0, y0), (x1, y1) = corners
        around = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        corners = np.stack([(x0 + x1) / 2 + (x1 - x0) / 2 * np.cos(around), (y0 + y1) / 2 + (y1 - y0) / 2 * np.sin(around)], 1)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = corners
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    centre = corners.mean(axis=0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return "polygon", (corners - centre) @ rotation.T + centre


def _paint_shape(image: Image.Image, visible: list, kind: str, corners: np.ndarray, colour) -> list:
    """Paints one shape over `image` in place; returns the visible masks with the new shape's last."""
    shape = Image.new("L", image.size, 0)
    _draw_shape(ImageDraw.Draw(shape), kind, corners)
    shape_mask = np.asarray(shape) > 0
    image.paste(colour, mask=shape)
    return [mask & ~shape_mask for mask in visible] + [shape_mask]


def _random_shape(rng: np.random.Generator, width: int, height: int) -> tuple[str, np.ndarray]:
    """A shape kind and its corners in pixels, (2, 2) (x, y) box corners of an ellipse or a
    rectangle, (3, 2) for a triangle."""
    side = min(width, height)
    extent_x, extent_y = rng.uniform(0.12, 0.45, 2) * side
    centre_x, centre_y = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
    box = np.array([[centre_x - extent_x / 2, centre_y - extent_y / 2], [centre_x + extent_x / 2, centre_y + extent_y / 2]])
    kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
    if kind != "triangle":
        return kind, box
    return kind, rng.uniform(-0.5, 0.5, (3, 2)) * (extent_x, extent_y) * 2 + (centre_x, centre_y)


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, corners: np.ndarray) -> None:
    points = [tuple(float(value) for value in corner) for corner in corners]
    if kind == "ellipse":
        draw.ellipse(points, fill=255)
    elif kind == "rectangle":
        draw.rectangle(points, fill=255)
    else:  # "triangle" or "polygon"
        draw.polygon(points, fill=255)
