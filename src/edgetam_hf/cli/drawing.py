"""Overlays a person can read: each object's mask tinted in its colour with a solid outline, and
the prompts drawn on top (boxes, green positive clicks, red negative clicks, object ids)."""

import numpy as np
from PIL import Image, ImageDraw

from .prompts import ObjectPrompt

# Bright, mutually distinct colours; object id N takes colour (N - 1) mod len.
OBJECT_COLORS = np.array(
    [(255, 70, 70), (60, 150, 255), (255, 200, 0), (40, 210, 120), (200, 90, 255), (255, 130, 30), (0, 210, 210), (255, 90, 190)],
    dtype=np.uint8,
)
POSITIVE_CLICK, NEGATIVE_CLICK, OUTLINE = (40, 220, 60), (235, 40, 40), (255, 255, 255)
TINT = 0.45
CLICK_RADIUS = 6


def object_color(obj_id: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in OBJECT_COLORS[(obj_id - 1) % len(OBJECT_COLORS)])


def overlay_labels(image: Image.Image, labels: np.ndarray, colors: dict[int, tuple[int, int, int]]) -> Image.Image:
    """Tints each labelled region ((height, width) ids, 0 = none) and outlines it in its colour."""
    canvas = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    edges = _region_edges(labels)
    for label, color in colors.items():
        region = labels == label
        canvas[region] = (1 - TINT) * canvas[region] + TINT * np.asarray(color, dtype=np.float32)
        canvas[region & edges] = color
    return Image.fromarray(canvas.round().astype(np.uint8))


def _region_edges(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label (outlines two pixels thick)."""
    edges = np.zeros(labels.shape, dtype=bool)
    horizontal = labels[:, 1:] != labels[:, :-1]
    vertical = labels[1:, :] != labels[:-1, :]
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    edges[1:, :] |= vertical
    edges[:-1, :] |= vertical
    return edges


def draw_prompts(image: Image.Image, prompts: list[ObjectPrompt]) -> Image.Image:
    """Draws boxes in their object's colour and clicks as dots, each labelled with its object id."""
    drawn = image.copy()
    draw = ImageDraw.Draw(drawn)
    for prompt in prompts:
        color = object_color(prompt.obj_id)
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            draw.rectangle((x0, y0, x1, y1), outline=OUTLINE, width=4)
            draw.rectangle((x0, y0, x1, y1), outline=color, width=2)
            _label(draw, (x0 + 4, y0 + 3), prompt.obj_id, color)
        for (x, y), label in zip(prompt.points, prompt.labels):
            fill = POSITIVE_CLICK if label else NEGATIVE_CLICK
            draw.ellipse((x - CLICK_RADIUS, y - CLICK_RADIUS, x + CLICK_RADIUS, y + CLICK_RADIUS), fill=fill, outline=OUTLINE, width=2)
            if prompt.box is None:
                _label(draw, (x + CLICK_RADIUS + 2, y - CLICK_RADIUS - 2), prompt.obj_id, color)
    return drawn


def _label(draw: ImageDraw.ImageDraw, corner: tuple[float, float], obj_id: int, color) -> None:
    text = str(obj_id)
    left, top, right, bottom = draw.textbbox(corner, text)
    draw.rectangle((left - 2, top - 1, right + 2, bottom + 1), fill=color)
    draw.text(corner, text, fill=(0, 0, 0))


def distinct_colors(count: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """Reproducible bright colours for many masks (segment-everything)."""
    rng = np.random.default_rng(seed)
    return [tuple(int(c) for c in 60 + rng.integers(0, 196, size=3)) for _ in range(count)]
