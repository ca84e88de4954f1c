"""Reading a video's frames one at a time: a folder of frames, or a video file decoded with PyAV
(an optional extra, `pip install "edgetam-hf[video]"`), and `LazyFrames`, which preprocesses them
when a session needs them and keeps the last few.

One rule for frame folders, used by the processor and the command line: the folder's .jpg /
.jpeg / .png files, in natural order of their names (`2.jpg` before `10.jpg`; for the original's
`00000.jpg ...` this is its numeric order). Every frame must have the first frame's size; a frame
that cannot be read or decoded, or whose size differs, is a ValueError naming it.
"""

import bisect
import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError

from ..image_modes import to_rgb8

if TYPE_CHECKING:  # only LazyFrames holds tensors: reading frames needs no torch (the ONNX command line)
    import torch

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
DEFAULT_FPS = 24.0  # for frame folders, which carry no rate (DAVIS is filmed at 24 fps)
# A seek lands on the key frame before the one asked for; a frame this close ahead of the
# decoder's position is reached by decoding on instead.
_DECODE_AHEAD_LIMIT = 32


def import_av(purpose: str):
    try:
        import av
    except ImportError:
        raise ValueError(
            f'{purpose} needs PyAV: pip install "edgetam-hf[video]" (or pass a folder of JPEG / PNG frames)'
        ) from None
    return av


def frame_files(folder: Path, argument: str = "video") -> list[Path]:
    """The folder's frames in natural order of their names."""
    if not folder.is_dir():
        raise ValueError(f"{argument}: {folder} is not a folder of frames")
    files = [file for file in folder.iterdir() if file.suffix.lower() in FRAME_EXTENSIONS]
    if not files:
        raise ValueError(f"{argument}: {folder} holds no JPEG or PNG frames")
    return sorted(files, key=_natural_key)


def _natural_key(file: Path) -> list:
    """frame_2.jpg before frame_10.jpg."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", file.name)]


class FrameReader:
    """A video's frames as RGB PIL images by index; `names[i]` names frame i's mask file."""

    names: list[str]
    fps: float
    argument: str

    def __len__(self) -> int:
        return len(self.names)

    def read(self, index: int) -> Image.Image:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Image.Image:
        # A sequence of frames read on demand, for consumers that index frames (the ONNX tracker).
        return self.read(index)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every frame: the first frame's."""
        if getattr(self, "_size", None) is None:
            self._size = self.read(0).size
        return self._size

    def _checked(self, image: Image.Image, index: int) -> Image.Image:
        if getattr(self, "_size", None) is None:
            self._size = image.size
        elif image.size != self._size:
            raise ValueError(
                f"{self.argument}: frame {index} ({self.names[index]}) is {image.size[0]}x{image.size[1]}, "
                f"the first frame {self._size[0]}x{self._size[1]}; every frame must have one size"
            )
        return image

    def opened_again(self) -> "FrameReader":
        """A reader of the same frames with a place of its own (a file's decoder keeps one)."""
        return self

    def close(self) -> None:
        pass


class FolderFrames(FrameReader):
    def __init__(self, folder: Path, argument: str = "video"):
        self.files = frame_files(Path(folder), argument)
        self.names = [file.stem for file in self.files]
        self.fps = DEFAULT_FPS
        self.argument = argument
        self._size = None

    def read(self, index: int) -> Image.Image:
        file = self.files[index]
        try:
            with Image.open(file) as image:
                return self._checked(to_rgb8(image, self.argument), index)
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{self.argument}: cannot read frame {index} ({file}) as an image ({error})") from None


class VideoFileFrames(FrameReader):
    """Frames of a video file. Opening it reads the packets' timestamps (no decoding) to know the
    frames; reading on from the last frame decodes on, any other frame seeks to the key frame
    before it and decodes from there."""

    def __init__(self, file: Path, argument: str = "video"):
        self.av = import_av(f"reading {Path(file).name}")
        self.file = Path(file)
        self.argument = argument
        self._size = None
        try:
            self._container = self.av.open(str(self.file))
        except (self.av.FFmpegError, OSError) as error:
            raise ValueError(f"{argument}: cannot open {self.file} as a video ({error})") from None
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"{argument}: {self.file} has no video stream")
        self._stream = self._container.streams.video[0]
        self.fps = float(self._stream.average_rate) if self._stream.average_rate else DEFAULT_FPS
        try:
            timestamps = [packet.pts for packet in self._container.demux(self._stream) if packet.size > 0]
        except self.av.FFmpegError as error:
            self._container.close()
            raise ValueError(f"{argument}: cannot read the packets of {self.file} ({error})") from None
        if not timestamps or any(pts is None for pts in timestamps):
            self._container.close()
            raise ValueError(f"{argument}: {self.file} has no frames with timestamps to read")
        self._timestamps = sorted(timestamps)  # presentation order
        self.names = [f"{index:05d}" for index in range(len(self._timestamps))]
        self._decoded = None  # the running decoder
        self._next_index = None  # the index of the frame it yields next

    def read(self, index: int) -> Image.Image:
        if not 0 <= index < len(self):
            raise ValueError(f"{self.argument}: frame {index} is outside the video ({len(self)} frames)")
        if self._decoded is None or not 0 <= index - self._next_index <= _DECODE_AHEAD_LIMIT:
            self._seek(index)
        try:
            while True:
                frame = next(self._decoded)
                position = self._index_of(frame.pts)
                self._next_index = position + 1
                if position == index:
                    break
                if position > index:
                    raise ValueError(f"{self.argument}: frame {index} of {self.file} could not be decoded (skipped by the decoder)")
        except StopIteration:
            self._decoded = None
            raise ValueError(f"{self.argument}: frame {index} of {self.file} could not be decoded (the file ends)") from None
        except self.av.FFmpegError as error:
            self._decoded = None
            raise ValueError(f"{self.argument}: frame {index} of {self.file} could not be decoded ({error})") from None
        return self._checked(frame.to_image().convert("RGB"), index)

    def _seek(self, index: int) -> None:
        self._container.seek(self._timestamps[index], stream=self._stream, backward=True, any_frame=False)
        self._decoded = self._container.decode(self._stream)
        self._next_index = 0

    def _index_of(self, pts: int | None) -> int:
        if pts is None:  # a frame without a timestamp follows the previous one
            return self._next_index
        return bisect.bisect_left(self._timestamps, pts)

    def opened_again(self) -> "VideoFileFrames":
        return VideoFileFrames(self.file, self.argument)

    def close(self) -> None:
        self._container.close()


def open_frames(path: str | Path, argument: str = "video") -> FrameReader:
    """A folder of frames or a video file."""
    source = Path(path)
    if source.is_dir():
        return FolderFrames(source, argument)
    if not source.is_file():
        raise ValueError(f"{argument}: no such file or folder: {path}")
    return VideoFileFrames(source, argument)


class LazyFrames:
    """A reader's frames preprocessed when asked for, the `cache_size` most recently used kept.
    Indexing gives `(3, side, side)` float32 tensors, as a preprocessed video tensor does."""

    def __init__(self, reader: FrameReader, preprocess: Callable[[Image.Image], "torch.Tensor"], cache_size: int = 4):
        if not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be a positive int, got {cache_size!r}")
        self.reader = reader
        self.preprocess = preprocess
        self.cache_size = cache_size
        self._cache: OrderedDict[int, "torch.Tensor"] = OrderedDict()

    def __len__(self) -> int:
        return len(self.reader)

    @property
    def num_cached_frames(self) -> int:
        return len(self._cache)

    def __getitem__(self, index: int) -> "torch.Tensor":
        pixels = self._cache.get(index)
        if pixels is None:
            pixels = self.preprocess(self.reader.read(index))
            self._cache[index] = pixels
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return pixels
