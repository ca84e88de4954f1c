"""Datasets of images with per-object masks, in the two layouts users have on disk.

Both yield `{"image": PIL RGB image, "masks": (num_objects, height, width) bool array}`, what
`EdgeTamDataCollator` takes. Masks are instance-id PNGs, as DAVIS, YouTube-VOS and most
annotation tools write them: 0 is background and each other value one object (a palette PNG's
indices, or grey levels). Images whose mask holds no object are left out (they give no prompt).
"""

import logging
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..image_modes import to_rgb8

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ImageMaskFolderDataset(Dataset):
    """`root/images/NAME.jpg` (or .png, ...) with `root/masks/NAME.png`."""

    def __init__(self, root: str | Path):
        root = Path(root)
        image_dir, mask_dir = root / "images", root / "masks"
        for folder in (image_dir, mask_dir):
            if not folder.is_dir():
                raise ValueError(f"root: expected {folder} (layout: images/NAME.jpg with masks/NAME.png)")
        images = {path.stem: path for path in sorted(image_dir.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES}
        pairs = [(images[path.stem], path) for path in sorted(mask_dir.glob("*.png")) if path.stem in images]
        self.pairs = _with_objects(pairs, root)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        return load_pair(*self.pairs[index])


class DavisFolderDataset(Dataset):
    """Every annotated frame of a DAVIS-layout folder, as images: `root/JPEGImages/<resolution>/
    <video>/<frame>.jpg` with `root/Annotations/<resolution>/<video>/<frame>.png`.

    `videos` limits it to some videos (e.g. the names in DAVIS's ImageSets/2017/train.txt).
    """

    def __init__(self, root: str | Path, resolution: str = "480p", videos: list[str] | None = None):
        root = Path(root)
        frame_root, mask_root = root / "JPEGImages" / resolution, root / "Annotations" / resolution
        for folder in (frame_root, mask_root):
            if not folder.is_dir():
                raise ValueError(f"root: expected {folder} (DAVIS layout: JPEGImages/{resolution}/<video>/*.jpg)")
        names = sorted(path.name for path in mask_root.iterdir() if path.is_dir()) if videos is None else list(videos)
        pairs = []
        for name in names:
            if not (mask_root / name).is_dir():
                raise ValueError(f"videos: no annotations for {name!r} in {mask_root}")
            frames = {path.stem: path for path in (frame_root / name).glob("*") if path.suffix.lower() in IMAGE_SUFFIXES}
            pairs += [(frames[m.stem], m) for m in sorted((mask_root / name).glob("*.png")) if m.stem in frames]
        self.pairs = _with_objects(pairs, root)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        return load_pair(*self.pairs[index])


def load_pair(image_path: Path, mask_path: Path) -> dict:
    image = to_rgb8(Image.open(image_path), str(image_path))
    object_ids = read_object_ids(mask_path)
    if object_ids.shape != (image.height, image.width):
        raise ValueError(f"{mask_path} is {object_ids.shape[::-1]} (width, height) but {image_path} is {image.size}")
    ids = np.unique(object_ids[object_ids > 0])
    return {"image": image, "masks": object_ids[None] == ids[:, None, None]}


def read_object_ids(mask_path: Path) -> np.ndarray:
    """(height, width) integer object ids of an instance-id PNG (palette indices or grey levels)."""
    with Image.open(mask_path) as mask:
        if mask.mode not in ("P", "L", "I", "I;16"):
            raise ValueError(f"{mask_path}: expected a palette or single-channel instance-id PNG, got mode {mask.mode}")
        return np.asarray(mask).astype(np.int64)


def _with_objects(pairs: list[tuple[Path, Path]], root: Path) -> list[tuple[Path, Path]]:
    kept = [pair for pair in pairs if (read_object_ids(pair[1]) > 0).any()]
    if not kept:
        raise ValueError(f"root: found no image with an annotated object under {root}")
    if len(kept) < len(pairs):
        logger.info("%s: left out %d images whose mask holds no object", root, len(pairs) - len(kept))
    return kept
