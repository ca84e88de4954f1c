"""What the page draws and what it downloads, made from masks and label maps (pixel value =
object id): overlays as palette PNGs the browser composites, PNG masks, DAVIS zips, COCO RLE
JSON and an overlay video."""

import io
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..cli.drawing import object_color, overlay_labels
from ..cli.media import OverlayVideoWriter
from ..masks_and_boxes import masks_to_rle, rle_with_list_counts

# Overlays are palette PNGs: index N (an object id) is its colour half transparent, index N + 128
# its outline, opaque. So an overlay is one small PNG the browser draws over the frame as it is.
MAX_OBJECT_ID = 127
_FILL_ALPHA, _EDGE_OFFSET = 140, 128


def _overlay_palette() -> tuple[list[int], bytes]:
    colors, alphas = [0, 0, 0], [0]
    for index in range(1, 256):
        obj_id = index - _EDGE_OFFSET if index > _EDGE_OFFSET else index
        colors += object_color(max(obj_id, 1))
        alphas.append(255 if index > _EDGE_OFFSET else _FILL_ALPHA)
    return colors, bytes(alphas)


_PALETTE, _ALPHAS = _overlay_palette()


def overlay_png(labels: np.ndarray) -> bytes:
    """(height, width) uint8 object ids -> a PNG of the tinted, outlined objects, transparent elsewhere."""
    indices = labels.astype(np.uint8).copy()
    inner = np.zeros(labels.shape, dtype=bool)
    # A pixel is inside its region when its four neighbours carry its label; the rest is outline.
    inner[1:-1, 1:-1] = (
        (labels[1:-1, 1:-1] == labels[:-2, 1:-1]) & (labels[1:-1, 1:-1] == labels[2:, 1:-1])
        & (labels[1:-1, 1:-1] == labels[1:-1, :-2]) & (labels[1:-1, 1:-1] == labels[1:-1, 2:])
    )
    edge = (labels > 0) & ~inner
    indices[edge] += _EDGE_OFFSET
    image = Image.fromarray(indices, mode="P")
    image.putpalette(_PALETTE)
    buffer = io.BytesIO()
    # compress_level 1: a mask compresses well anyway, and encoding time is part of a click's latency.
    image.save(buffer, format="PNG", transparency=_ALPHAS, compress_level=1)
    return buffer.getvalue()


def object_overlay_png(mask: np.ndarray, obj_id: int) -> bytes:
    """One object's (height, width) bool mask drawn as `overlay_png` draws it."""
    return overlay_png(mask.astype(np.uint8) * obj_id)


def binary_png(mask: np.ndarray) -> bytes:
    """(height, width) bool -> a 0 / 255 greyscale PNG, as `segment` writes mask_<id>.png."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_bytes(files: Iterable[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


def coco_document(images: list[dict], masks: list[tuple[int, int, np.ndarray, dict]]) -> str:
    """COCO JSON: `images` ({"id", "file_name", "width", "height"}), and per mask (image id,
    object id, (height, width) bool, extra fields) one annotation whose segmentation is an
    uncompressed RLE (column-major counts, zeros first; pycocotools' `frPyObjects` reads it)."""
    annotations = []
    if masks:
        rles = masks_to_rle(torch.from_numpy(np.stack([mask for _, _, mask, _ in masks])))
        for number, ((image_id, obj_id, mask, extra), rle) in enumerate(zip(masks, rles, strict=True), start=1):
            rows, columns = np.nonzero(mask)
            bbox = [int(columns.min()), int(rows.min()), int(np.ptp(columns) + 1), int(np.ptp(rows) + 1)] if rows.size else [0, 0, 0, 0]
            annotations.append({
                "id": number, "image_id": image_id, "category_id": 1, "object_id": obj_id,
                "segmentation": rle_with_list_counts(rle), "area": int(mask.sum()), "bbox": bbox, "iscrowd": 0, **extra,
            })
    return json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]})


def write_overlay_video(path_stem: Path, frames: Iterable[tuple[Image.Image, np.ndarray | None]], fps: float, size) -> Path:
    """Each frame tinted with its label map (None: no result, the frame as it is); an .mp4, or a
    .gif where PyAV is missing or the size is odd (see `OverlayVideoWriter`)."""
    with OverlayVideoWriter(path_stem, fps, size) as writer:
        for frame, labels in frames:
            if labels is not None:
                present = [int(obj_id) for obj_id in np.unique(labels) if obj_id]
                frame = overlay_labels(frame, labels, {obj_id: object_color(obj_id) for obj_id in present})
            writer.add(frame)
    return writer.path
