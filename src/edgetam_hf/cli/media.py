"""Reading images and videos, writing masks and overlay videos, for the command line.

Videos are read with `video.frame_source` (an .mp4 or anything FFmpeg reads, decoded with PyAV,
an optional extra: `pip install "edgetam-hf[video]"`, or a folder of JPEG / PNG frames); live
sources (`--stream`) are decoded with PyAV as they come. Masks are written in the DAVIS layout:
one indexed PNG per frame whose pixel values are object ids (0: background) and whose palette is
the DAVIS / PASCAL VOC one, so annotation tools show them in the usual colours.
"""

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..image_modes import to_rgb8
# FRAME_EXTENSIONS and open_frames are the command line's too (annotate, track).
from ..video.frame_source import DEFAULT_FPS, FRAME_EXTENSIONS, FolderFrames, FrameReader, import_av, open_frames  # noqa: F401


class Video(FrameReader):
    """A video held in memory: RGB frames, all of one size."""

    def __init__(self, frames: list[Image.Image], names: list[str], fps: float, argument: str = "VIDEO"):
        self.frames, self.names, self.fps, self.argument = frames, names, fps, argument
        self._size = None
        for index, frame in enumerate(frames):
            self._checked(frame, index)

    def read(self, index: int) -> Image.Image:
        return self.frames[index]


def read_image(path: str, argument: str = "IMAGE") -> Image.Image:
    file = Path(path)
    if file.is_dir():
        raise ValueError(f"{argument}: {path} is a folder; expected one image file (JPEG / PNG), so run the command once per image")
    if not file.is_file():
        raise ValueError(f"{argument}: no such file: {path}")
    try:
        with Image.open(file) as image:
            return to_rgb8(image, argument)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{argument}: cannot read {path} as an image ({error})") from None


def read_video(path: str, max_frames: int | None = None) -> Video:
    """The first `max_frames` frames (all when None) of a video file or a folder of frames, in memory."""
    reader = open_frames(path, "VIDEO")
    try:
        count = len(reader) if max_frames is None else min(max_frames, len(reader))
        return Video([reader.read(index) for index in range(count)], reader.names[:count], reader.fps)
    finally:
        reader.close()


class LiveSource:
    """Frames of a live source as they arrive: a video file, a camera (/dev/videoN), an RTSP /
    HTTP URL (decoded with PyAV), `-`: raw RGB24 frames on stdin, `size` (width, height) each, or
    a folder of frames."""

    def __init__(self, source: str, size: tuple[int, int] | None = None):
        self.source = source
        self.size = size
        self._container = None
        self._folder = FolderFrames(Path(source), "SOURCE") if Path(source).is_dir() else None
        if self._folder is not None:
            self.fps = self._folder.fps
            return
        if source == "-":
            if size is None:
                raise ValueError("--size WxH is needed to read raw RGB24 frames from stdin (SOURCE -)")
            self.fps = DEFAULT_FPS
            return
        av = import_av(f"reading {source}")
        options = {"rtsp_transport": "tcp"} if source.startswith("rtsp://") else {}
        kind = "v4l2" if source.startswith("/dev/video") else None
        try:
            self._container = av.open(source, format=kind, options=options)
        except (av.FFmpegError, OSError) as error:
            raise ValueError(f"SOURCE: cannot open {source} ({error})") from None
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"SOURCE: {source} has no video stream")
        rate = self._container.streams.video[0].average_rate
        self.fps = float(rate) if rate else DEFAULT_FPS

    def frames(self) -> Iterator[Image.Image]:
        if self._folder is not None:
            yield from (self._folder.read(index) for index in range(len(self._folder)))
            return
        if self._container is None:
            yield from _raw_frames(sys.stdin.buffer, *self.size)
            return
        av = import_av(f"reading {self.source}")
        index = 0
        try:
            for frame in self._container.decode(self._container.streams.video[0]):
                yield frame.to_image().convert("RGB")
                index += 1
        except av.FFmpegError as error:
            raise ValueError(f"SOURCE: frame {index} of {self.source} could not be decoded ({error})") from None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()


def _raw_frames(stream, width: int, height: int) -> Iterator[Image.Image]:
    frame_bytes = width * height * 3
    index = 0
    while True:
        data = stream.read(frame_bytes)
        if not data:
            return
        if len(data) != frame_bytes:
            raise ValueError(
                f"SOURCE -: frame {index} on stdin has {len(data)} bytes, a {width}x{height} RGB24 frame has {frame_bytes}"
            )
        yield Image.frombytes("RGB", (width, height), data)
        index += 1


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
    # Written aside and renamed, so that an interrupted run leaves no half-written mask.
    partial = path.with_name(path.name + ".partial")
    image.save(partial, format="PNG")
    os.replace(partial, path)


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


def label_map(mask_logits: np.ndarray, obj_ids: list[int]) -> np.ndarray:
    """(num_objects, height, width) logits (an array or a torch tensor) -> (height, width) uint8
    object ids: where several objects claim a pixel, the most confident one (largest logit, the
    first of equal ones) takes it; 0 where none does."""
    if not isinstance(mask_logits, np.ndarray):  # a tensor, on any device, in any dtype (torch is not imported here)
        mask_logits = mask_logits.detach().float().cpu().numpy()
    if len(obj_ids) == 0:
        return np.zeros(mask_logits.shape[-2:], dtype=np.uint8)
    best_row = mask_logits.argmax(axis=0)
    best_logit = np.take_along_axis(mask_logits, best_row[None], axis=0)[0]
    return np.where(best_logit > 0, np.asarray(obj_ids, dtype=np.uint8)[best_row], 0).astype(np.uint8)
