"""Reading images and videos, writing masks and overlay videos, for the command line.

Videos are an .mp4 (or any container FFmpeg reads) decoded with PyAV, an optional extra
(`pip install "edgetam-hf[video]"`), or a folder of JPEG / PNG frames. Masks are written in the
DAVIS layout: one indexed PNG per frame whose pixel values are object ids (0: background) and
whose palette is the DAVIS / PASCAL VOC one, so annotation tools show them in the usual colours.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
DEFAULT_FPS = 24.0  # for frame folders, which carry no rate (DAVIS is filmed at 24 fps)


@dataclass
class Video:
    frames: list[Image.Image]  # RGB, all of one size
    names: list[str]  # per frame, the name of its mask file (without .png)
    fps: float

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size  # (width, height)


def read_image(path: str, argument: str = "IMAGE") -> Image.Image:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{argument}: no such file: {path}")
    try:
        with Image.open(file) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{argument}: cannot read {path} as an image ({error})") from None


def read_video(path: str, max_frames: int | None = None) -> Video:
    """The first `max_frames` frames (all when None) of a video file or a folder of frames."""
    source = Path(path)
    if source.is_dir():
        return _read_frame_folder(source, max_frames)
    if not source.is_file():
        raise ValueError(f"VIDEO: no such file or folder: {path}")
    return _decode_video_file(source, max_frames)


def _read_frame_folder(folder: Path, max_frames: int | None) -> Video:
    files = [file for file in folder.iterdir() if file.suffix.lower() in FRAME_EXTENSIONS]
    if not files:
        raise ValueError(f"VIDEO: {folder} holds no JPEG or PNG frames")
    files.sort(key=_natural_key)
    frames = [read_image(str(file), "VIDEO") for file in files[:max_frames]]
    _check_one_size(frames, [file.name for file in files])
    return Video(frames, [file.stem for file in files[: len(frames)]], DEFAULT_FPS)


def _natural_key(file: Path) -> list:
    """frame_2.jpg before frame_10.jpg."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", file.name)]


def _decode_video_file(file: Path, max_frames: int | None) -> Video:
    av = _import_av(f"reading {file.name}")
    frames = []
    try:
        with av.open(str(file)) as container:
            if not container.streams.video:
                raise ValueError(f"VIDEO: {file} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else DEFAULT_FPS
            for frame in container.decode(stream):
                if max_frames is not None and len(frames) >= max_frames:
                    break
                frames.append(frame.to_image().convert("RGB"))
    except av.FFmpegError as error:
        raise ValueError(f"VIDEO: cannot decode {file} ({error})") from None
    if not frames:
        raise ValueError(f"VIDEO: no frames could be decoded from {file}")
    _check_one_size(frames, [f"frame {index}" for index in range(len(frames))])
    return Video(frames, [f"{index:05d}" for index in range(len(frames))], fps)


def _check_one_size(frames: list[Image.Image], names: list[str]) -> None:
    for frame, name in zip(frames, names):
        if frame.size != frames[0].size:
            raise ValueError(f"VIDEO: {name} is {frame.size[0]}x{frame.size[1]}, the first frame {frames[0].size[0]}x{frames[0].size[1]}")


def _import_av(purpose: str):
    try:
        import av
    except ImportError:
        raise ValueError(
            f'{purpose} needs PyAV: pip install "edgetam-hf[video]" (or pass a folder of JPEG / PNG frames)'
        ) from None
    return av


def has_av() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def davis_palette() -> list[int]:
    """The 256-colour PASCAL VOC palette that DAVIS masks use: the bits of each index spread over
    the high bits of red, green and blue (1: dark red, 2: dark green, 3: olive, ...)."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        bits = index
        for shift in range(7, -1, -1):
            red |= (bits & 1) << shift
            green |= ((bits >> 1) & 1) << shift
            blue |= ((bits >> 2) & 1) << shift
            bits >>= 3
        palette += [red, green, blue]
    return palette


def save_label_png(labels: np.ndarray, path: Path) -> None:
    """(height, width) uint8 object ids -> an indexed PNG with the DAVIS palette."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(davis_palette())
    image.save(path)


class OverlayVideoWriter:
    """Writes frames as an H.264 .mp4 with PyAV, else (or for odd frame sizes, which H.264's 4:2:0
    sampling cannot hold) as an animated GIF. Use as a context manager; `path` says which."""

    def __init__(self, stem: Path, fps: float, size: tuple[int, int]):
        width, height = size
        self.fps = fps
        self.use_mp4 = has_av() and width % 2 == 0 and height % 2 == 0
        self.path = stem.with_suffix(".mp4" if self.use_mp4 else ".gif")
        self._gif_frames: list[Image.Image] = []
        self._container = self._stream = None
        if self.use_mp4:
            import av

            self._container = av.open(str(self.path), mode="w")
            self._stream = self._container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=round(fps))
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"

    def add(self, frame: Image.Image) -> None:
        if not self.use_mp4:
            self._gif_frames.append(frame.convert("P", palette=Image.Palette.ADAPTIVE))
            return
        import av

        for packet in self._stream.encode(av.VideoFrame.from_image(frame)):
            self._container.mux(packet)

    def __enter__(self) -> "OverlayVideoWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.use_mp4:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        elif self._gif_frames:
            first, *rest = self._gif_frames
            first.save(self.path, save_all=True, append_images=rest, duration=round(1000 / self.fps), loop=0)


def label_map(mask_logits: torch.Tensor, obj_ids: list[int]) -> np.ndarray:
    """(num_objects, height, width) logits -> (height, width) uint8 object ids: where several
    objects claim a pixel, the most confident one (largest logit) takes it; 0 where none does."""
    if len(obj_ids) == 0:
        return np.zeros(mask_logits.shape[-2:], dtype=np.uint8)
    best_logit, best_row = mask_logits.max(dim=0)
    ids = torch.tensor(obj_ids, dtype=torch.uint8)[best_row]
    return torch.where(best_logit > 0, ids, torch.zeros_like(ids)).numpy()
