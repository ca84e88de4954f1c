"""Files coming into the studio: received into the session's folder within a size limit, under a
name of our own making (no path from the client is ever joined as it is), and opened with a
message a person can act on when they are too large, too long or not what they claim to be."""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..video.frame_source import FRAME_EXTENSIONS, FrameReader, open_frames
from .sessions import StudioError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi")
FRAMES_FOLDER = "frames"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Limits:
    """What one upload may be: --max-upload-mb, --max-seconds (a video's duration; a folder of
    frames counts at its frame rate, 24 fps), --max-side (the longer side of an image or frame)."""

    max_upload_bytes: int = 1024 * 1024 * 1024
    max_seconds: float = 600.0
    max_side: int = 4096
    max_frame_files: int = 20000

    def __post_init__(self):
        for name, value in (("--max-upload-mb", self.max_upload_bytes), ("--max-seconds", self.max_seconds), ("--max-side", self.max_side)):
            if value <= 0:
                raise ValueError(f"{name}: expected more than 0, got {value}")


def safe_name(name: str) -> str:
    """A file name for the client's `name`: its last component, letters, digits, '.', '_', '-'
    only, never starting with a dot (so never '..' nor a hidden file)."""
    last = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", last).lstrip(".")[-120:]
    return cleaned or "upload"


def frames_folder(session_folder: Path) -> Path:
    """Where the frames of a folder chosen on the page are uploaded."""
    return session_folder / "uploads" / FRAMES_FOLDER


def upload_path(folder: Path, name: str, into_frames: bool) -> Path:
    target = (frames_folder(folder) if into_frames else folder / "uploads") / safe_name(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def hide_folder(message: str, uploads: Path) -> str:
    """A reader's message without the server's folders: `uploads/<name>` becomes `<name>`."""
    return message.replace(f"{uploads}{os.sep}", "")


def kind_of(path: Path) -> str:
    """'image', 'video' or 'frames' (a folder), from the name; a StudioError for anything else."""
    if path.is_dir():
        return "frames"
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    raise StudioError(
        f"{path.name}: not a file the studio opens; images: {', '.join(IMAGE_EXTENSIONS)}, "
        f"videos: {', '.join(VIDEO_EXTENSIONS)}, or a folder of {' / '.join(FRAME_EXTENSIONS)} frames"
    )


def open_image(path: Path, limits: Limits) -> Image.Image:
    """The image as RGB; its size is checked before its pixels are decoded."""
    try:
        with Image.open(path) as image:
            _check_side(path.name, *image.size, limits)
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise StudioError(hide_folder(f"{path.name}: cannot be read as an image ({error})", path.parent)) from None


def open_video(path: Path, limits: Limits) -> FrameReader:
    """A reader of the video file or folder of frames, read frame by frame later on; its first
    frame is decoded now to check that it can be, and its size."""
    if path.is_dir() and sum(1 for _ in path.iterdir()) > limits.max_frame_files:
        raise StudioError(f"the folder holds more than {limits.max_frame_files} files")
    try:
        reader = open_frames(path, path.name)
    except ValueError as error:
        raise StudioError(hide_folder(str(error), path.parent)) from None
    try:
        _check_side(path.name, *reader.size, limits)
        seconds = len(reader) / reader.fps
        if seconds > limits.max_seconds:
            raise StudioError(
                f"{path.name}: {seconds:.0f} s long ({len(reader)} frames at {reader.fps:g} fps); the studio takes up to "
                f"{limits.max_seconds:g} s (--max-seconds)"
            )
    except ValueError as error:
        reader.close()
        raise StudioError(hide_folder(str(error), path.parent)) from None
    return reader


def _check_side(name: str, width: int, height: int, limits: Limits) -> None:
    if max(width, height) > limits.max_side:
        raise StudioError(f"{name}: {width}x{height} pixels; the studio takes up to {limits.max_side} pixels a side (--max-side)")
