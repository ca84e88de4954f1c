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
    dx, dy = _DISC_STEP[0] * t, _DISC_STEP[1] * t
    draw.ellipse((120 + dx, 90 + dy, 280 + dx, 250 + dy), fill=(220, 60, 50))
    dx, dy = _RECTANGLE_STEP[0] * t, _RECTANGLE_STEP[1] * t
    draw.polygon([(420, 60), (560, 200), (300, 200)], fill=(70, 190, 90))
    draw.rectangle((390 + dx, 260 + dy, 550 + dx, 410 + dy), fill=(50, 90, 220))
    return image


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
