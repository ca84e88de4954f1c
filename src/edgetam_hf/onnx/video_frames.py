"""The frames `OnnxVideoTracker` tracks and their image features (NumPy, no torch).

A video given as a sequence is read when a frame is needed, never copied, so a lazy reader stays
lazy. A stream gets its frames one at a time; it keeps the pixels of the newest frame and of the
frames the tracker still needs (its prompted frames: a consolidation, or an object joining
later, encodes them again), as the PyTorch streaming session keeps them. Features are cached for
the most recently used frames only.
"""

from collections.abc import Callable, Iterable

import numpy as np

from ..tracking.feature_cache import FeatureCache

# (high_res_feat_s0, high_res_feat_s1, vision_features) of one frame, batch 1.
FrameFeatures = tuple[np.ndarray, np.ndarray, np.ndarray]


class OnnxVideoFrames:
    """The frames of one video, by index, and a bounded cache of their features.

    Args:
        frames: a sequence of frames (PIL images or (H, W, 3) uint8 arrays), or None for a stream.
        encode: a frame -> its `FrameFeatures` (the image encoder graph).
        max_cached_features: how many frames' features are kept (the most recently used).
        video_size: (height, width) of the frames; default: that of the first frame.
    """

    def __init__(self, frames, encode: Callable[[object], FrameFeatures], max_cached_features: int, video_size=None):
        self.is_streaming = frames is None
        self._frames = frames if frames is None or hasattr(frames, "__getitem__") else list(frames)
        self._streamed: dict[int, object] = {}  # a stream's frames still kept, by index
        self.num_frames = len(self._frames) if frames is not None else 0
        self.video_size = tuple(video_size) if video_size is not None else None
        if self.video_size is None and self.num_frames:
            self.video_size = frame_size(self._frames[0])
        self._encode = encode
        self._features = FeatureCache(max_cached_features, name="max_cached_features")

    def add(self, frame) -> int:
        """Appends a streamed frame and computes its features now; returns its index."""
        if not self.is_streaming:
            raise ValueError("add_frame is for a tracker made without frames (streaming); this one was given its frames")
        if self.video_size is None:
            self.video_size = frame_size(frame)
        elif frame_size(frame) != self.video_size:
            raise ValueError(f"frame has size {frame_size(frame)} (height, width); the video's frames are {self.video_size}")
        frame_idx = self.num_frames
        self._streamed[frame_idx] = frame
        self.num_frames += 1
        self._features.put(frame_idx, self._encode(frame))
        return frame_idx

    def features(self, frame_idx: int) -> FrameFeatures:
        """The frame's features, from the cache or computed (and cached)."""
        return self._features.get(frame_idx, lambda: self._encode(self._frame(frame_idx)))

    def _frame(self, frame_idx: int):
        if not self.is_streaming:
            return self._frames[frame_idx]
        frame = self._streamed.get(frame_idx)
        if frame is None:
            raise ValueError(
                f"frame {frame_idx} of the stream is no longer kept: a stream keeps its newest frame and its "
                "prompted frames, so only those can be prompted"
            )
        return frame

    def forget_streamed_before(self, frame_idx: int, needed: Iterable[int]) -> None:
        """A stream drops the pixels of the frames before `frame_idx` that are not `needed`."""
        needed = set(needed)
        for t in [t for t in self._streamed if t < frame_idx and t not in needed]:
            del self._streamed[t]

    @property
    def num_cached_features(self) -> int:
        return len(self._features)

    @property
    def num_stored_frames(self) -> int:
        """A stream's frames whose pixels are kept (a sequence is read when needed: 0)."""
        return len(self._streamed)


def frame_size(frame) -> tuple[int, int]:
    """(height, width) of a PIL image or an (H, W, C) array."""
    if hasattr(frame, "size") and hasattr(frame, "mode"):  # PIL: (width, height)
        return frame.size[1], frame.size[0]
    return tuple(np.shape(frame)[:2])
