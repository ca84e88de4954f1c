"""The benchmark's image and 480x640 clip: the workplace's shared media, or rendered stand-ins."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgetam_hf.sample_media import render_sample_image

from .environment import REPOSITORY

SHARED_MEDIA = REPOSITORY.parent / "shared" / "media"
TRUCK_IMAGE = SHARED_MEDIA / "images" / "truck.jpg"
BEDROOM_FRAMES = SHARED_MEDIA / "videos" / "bedroom"
CLIP_SIZE = (640, 480)  # (width, height)
# One click per object, as fractions of the frame's (width, height): spread over the frame so the
# objects' masks differ; with random weights what they hit does not change the work done.
CLICKS = ((0.22, 0.65), (0.45, 0.30), (0.75, 0.50))
_TRUCK_WINDOW_CLICK = (500, 375)  # hits the truck's window (shared/media/README.md)
_SAMPLE_DISC_CLICK = (200, 170)  # the red disc of the rendered sample image
_RENDERED_SHIFT_PER_FRAME = 6  # pixels the rendered scene moves each frame
_JPEG_QUALITY = 90


@dataclass(frozen=True)
class BenchmarkImage:
    image: Image.Image  # RGB
    click: tuple[int, int]  # (x, y) in image pixels
    source: str


@dataclass(frozen=True)
class Clip:
    folder: Path  # 00000.jpg, 00001.jpg, ...: exactly the clip's frames (Meta's loader reads a folder)
    frame_paths: list[Path]
    clicks: list[tuple[float, float]]  # (x, y) in frame pixels, one per object
    source: str

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every frame."""
        return CLIP_SIZE[1], CLIP_SIZE[0]


def benchmark_image() -> BenchmarkImage:
    if TRUCK_IMAGE.exists():
        return BenchmarkImage(Image.open(TRUCK_IMAGE).convert("RGB"), _TRUCK_WINDOW_CLICK, str(TRUCK_IMAGE))
    return BenchmarkImage(render_sample_image(), _SAMPLE_DISC_CLICK, "edgetam_hf.sample_media.render_sample_image()")


def write_clip(folder: Path, num_frames: int) -> Clip:
    """Writes a 640x480 JPEG clip of `num_frames` frames into `folder` (which must be empty).

    From the bedroom clip of the shared media (960x540 resized to 640x480; played forward then
    backward when more frames are asked for than it has), else the rendered sample scene moving
    sideways.
    """
    source_frames = sorted(BEDROOM_FRAMES.glob("*.jpg")) if BEDROOM_FRAMES.is_dir() else []
    if source_frames:
        source = f"{BEDROOM_FRAMES} resized to {CLIP_SIZE[0]}x{CLIP_SIZE[1]}"
        frames = (_resized(source_frames[index]) for index in ping_pong_indices(len(source_frames), num_frames))
    else:
        source = "edgetam_hf.sample_media.render_sample_image() moving sideways"
        frames = _moving_sample_scene(num_frames)
    paths = []
    for index, frame in enumerate(frames):
        path = folder / f"{index:05d}.jpg"
        frame.save(path, quality=_JPEG_QUALITY)
        paths.append(path)
    width, height = CLIP_SIZE
    clicks = [(x * width, y * height) for x, y in CLICKS]
    return Clip(folder, paths, clicks, source)


def decode_frame(path: Path) -> Image.Image:
    """A clip frame decoded to RGB (`convert` forces PIL to decode now rather than lazily)."""
    with Image.open(path) as image:
        return image.convert("RGB")


def ping_pong_indices(length: int, count: int) -> list[int]:
    """0, 1, ..., length - 1, length - 2, ..., 0, 1, ...: `count` indices with no jump cut."""
    if length == 1:
        return [0] * count
    period = 2 * (length - 1)
    return [step % period if step % period < length else period - step % period for step in range(count)]


def _resized(path: Path) -> Image.Image:
    return decode_frame(path).resize(CLIP_SIZE, Image.BILINEAR)


def _moving_sample_scene(num_frames: int):
    scene = np.asarray(render_sample_image().resize(CLIP_SIZE, Image.BILINEAR))
    for index in range(num_frames):
        yield Image.fromarray(np.roll(scene, index * _RENDERED_SHIFT_PER_FRAME, axis=1))
