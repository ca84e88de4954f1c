"""The project's own sample media: shapes rendered with PIL, deterministic, no files to ship.

`render_sample_frame(t)` draws frame t of a short clip: a red disc drifting right and down, a
blue rectangle sliding left until it passes in front of the disc, and a green triangle that
stays; frame 0 is the sample image.
"""

import numpy as np
from PIL import Image, ImageDraw

SAMPLE_IMAGE_SIZE = (640, 480)  # (width, height)
SAMPLE_CLIP_FRAMES = 16
# Boxes around the disc and the rectangle on frame 0, (x0, y0, x1, y1) in sample-image pixels.
SAMPLE_BOXES = ((110, 80, 290, 260), (380, 250, 560, 420))
SAMPLE_RECTANGLE_CLICK = (470, 335)  # the rectangle's centre on frame 0
_DISC_STEP, _RECTANGLE_STEP = (10, 4), (-8, 0)  # pixels per frame


def render_sample_image() -> Image.Image:
    """A 640x480 RGB scene: a shaded background, a red disc, a blue rectangle and a green triangle."""
    return render_sample_frame(0)


def render_sample_frame(t: int) -> Image.Image:
    image = Image.fromarray(_background())
    draw = ImageDraw.Draw(image)
    for kind, shape, colour in _shapes_at(t):
        getattr(draw, kind)(shape, fill=colour)
    return image


def render_sample_frame_masks(t: int) -> np.ndarray:
    """The ground truth of frame t: (3, height, width) bool, the visible part of the disc, the
    rectangle and the triangle (object ids 1, 2, 3 in this order)."""
    visible = {}
    for kind, shape, colour in _shapes_at(t):
        canvas = Image.new("L", SAMPLE_IMAGE_SIZE, 0)
        getattr(ImageDraw.Draw(canvas), kind)(shape, fill=1)
        drawn = np.asarray(canvas) > 0
        visible = {name: mask & ~drawn for name, mask in visible.items()}
        visible[kind] = drawn
    return np.stack([visible["ellipse"], visible["rectangle"], visible["polygon"]])


def _shapes_at(t: int) -> list[tuple[str, object, tuple[int, int, int]]]:
    """(ImageDraw method, its shape argument, colour) of each shape on frame t, in drawing order."""
    disc_dx, disc_dy = _DISC_STEP[0] * t, _DISC_STEP[1] * t
    rectangle_dx, rectangle_dy = _RECTANGLE_STEP[0] * t, _RECTANGLE_STEP[1] * t
    return [
        ("ellipse", (120 + disc_dx, 90 + disc_dy, 280 + disc_dx, 250 + disc_dy), (220, 60, 50)),
        ("polygon", [(420, 60), (560, 200), (300, 200)], (70, 190, 90)),
        ("rectangle", (390 + rectangle_dx, 260 + rectangle_dy, 550 + rectangle_dx, 410 + rectangle_dy), (50, 90, 220)),
    ]


def render_sample_clip(num_frames: int = SAMPLE_CLIP_FRAMES) -> list[Image.Image]:
    return [render_sample_frame(t) for t in range(num_frames)]


def _background() -> np.ndarray:
    """(height, width, 3) uint8: red grows to the right, green downwards, blue fixed."""
    width, height = SAMPLE_IMAGE_SIZE
    columns = np.arange(width) * 60 // width
    rows = np.arange(height) * 60 // height
    background = np.empty((height, width, 3), dtype=np.uint8)
    background[..., 0] = 40 + columns[None, :]
    background[..., 1] = 60 + rows[:, None]
    background[..., 2] = 90
    return background
