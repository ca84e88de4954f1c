"""A tiny DAVIS-layout set the project renders itself: shapes moving over a shaded background,
with their ground-truth masks, for trying `annotate` and `evaluate` and for the tests.

    ROOT/JPEGImages/<video>/00000.jpg ...   the frames
    ROOT/Annotations/<video>/00000.png ...  indexed PNGs, pixel value = object id, DAVIS palette

Every video has a disc (object 1) and a rectangle (object 2) that drift and may cross (the one
drawn later hides the other, in the frames and the masks alike); every second video also has a
triangle (object 3) that first shows on frame 2, an object appearing later in the video.
Deterministic: the same arguments write the same pixels.
"""

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..cli.media import save_label_png

LATE_OBJECT_FIRST_FRAME = 2
_COLORS = {1: (215, 60, 50), 2: (40, 90, 210), 3: (60, 180, 80)}  # object id -> RGB


def render_sample_set(
    root: str | os.PathLike, frame_counts: tuple[int, ...] = (8, 6, 7), size: tuple[int, int] = (128, 96)
) -> list[str]:
    """Writes one video per entry of `frame_counts` (its number of frames), frames of `size`
    (width, height); returns the video names."""
    if not frame_counts or min(frame_counts) < 1:
        raise ValueError(f"frame_counts: expected one positive frame count per video, got {frame_counts}")
    width, height = size
    if width < 32 or height < 32:
        raise ValueError(f"size: expected at least 32x32 pixels, got {width}x{height}")
    root = Path(root)
    names = []
    for index, num_frames in enumerate(frame_counts):
        name = f"shapes-{index}"
        frame_dir, mask_dir = root / "JPEGImages" / name, root / "Annotations" / name
        frame_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        shapes = _video_shapes(index, width, height)
        for t in range(num_frames):
            frame, labels = _render_frame(shapes, t, width, height)
            frame.save(frame_dir / f"{t:05d}.jpg", quality=95)
            save_label_png(labels, mask_dir / f"{t:05d}.png")
        names.append(name)
    return names


def _video_shapes(index: int, width: int, height: int) -> list[dict]:
    """Each object's kind, first frame, start box (x0, y0, x1, y1) and velocity (pixels per frame)."""
    rng = np.random.default_rng(index)
    shapes = []
    for obj_id, kind in ((1, "disc"), (2, "rectangle"), (3, "triangle")):
        if obj_id == 3 and index % 2 == 0:
            continue
        box_w, box_h = rng.uniform(0.2, 0.35) * width, rng.uniform(0.25, 0.4) * height
        x0, y0 = rng.uniform(0.05, 0.6) * width, rng.uniform(0.05, 0.55) * height
        velocity = rng.uniform(-0.04, 0.04, size=2) * (width, height)
        first_frame = LATE_OBJECT_FIRST_FRAME if obj_id == 3 else 0
        shapes.append(dict(obj_id=obj_id, kind=kind, first_frame=first_frame, box=(x0, y0, x0 + box_w, y0 + box_h), velocity=velocity))
    return shapes


def _render_frame(shapes: list[dict], t: int, width: int, height: int) -> tuple[Image.Image, np.ndarray]:
    """Frame t as RGB and its (height, width) uint8 object ids."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack([100 + 50 * np.sin(xx / 11 + t / 4), 120 + 40 * np.cos(yy / 9), 140 - 30 * np.sin((xx + yy) / 23)], axis=-1)
    frame = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    labels = Image.new("L", (width, height), 0)
    frame_draw, label_draw = ImageDraw.Draw(frame), ImageDraw.Draw(labels)
    for shape in shapes:
        if t < shape["first_frame"]:
            continue
        dx, dy = shape["velocity"] * (t - shape["first_frame"])
        x0, y0, x1, y1 = (round(value) for value in (shape["box"][0] + dx, shape["box"][1] + dy, shape["box"][2] + dx, shape["box"][3] + dy))
        for draw, fill in ((frame_draw, _COLORS[shape["obj_id"]]), (label_draw, shape["obj_id"])):
            if shape["kind"] == "disc":
                draw.ellipse((x0, y0, x1, y1), fill=fill)
            elif shape["kind"] == "rectangle":
                draw.rectangle((x0, y0, x1, y1), fill=fill)
            else:
                draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    return frame, np.asarray(labels)
