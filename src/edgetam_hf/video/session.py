"""The inference session of the video model: frames, per-object prompts and results, the memory bank.

It holds what the original `SAM2VideoPredictor.init_state` keeps in a string-keyed dict, as typed
objects, behind the frame / device API of transformers' `Sam2VideoInferenceSession`. Results are
kept per object (the original also keeps them packed per frame; the packed tensors are the
per-object ones stacked, so nothing is lost), which lets objects join after tracking started.
"""

from typing import TYPE_CHECKING

import torch

from ..tracking.feature_cache import FeatureCache
from ..tracking.state import TrackerState
from .types import FrameFeatures

if TYPE_CHECKING:
    from ..modeling_video import EdgeTamVideoModel
    from .frame_source import LazyFrames


class EdgeTamVideoInferenceSession(TrackerState):
    """The state of tracking objects through one video.

    A bounded session keeps only what a later frame can read (see `forget_frames_behind`): the
    conditioning frames, the frames next to them, and the last frames tracked in each direction;
    its memory stays flat however long the video. A keep-everything session keeps every result,
    as the original does, for corrections on any frame and re-propagation over old frames.

    Args:
        video: `(num_frames, 3, 1024, 1024)` preprocessed frames, `LazyFrames` read on demand, or
            None to stream frames in.
        video_height, video_width: the size of the original frames (for prompts and masks).
        inference_device: where the model runs.
        inference_state_device: where results and memories are kept (default: inference_device).
        video_storage_device: where the preprocessed frames are kept (default: inference_device);
            "cpu" keeps a long video off the accelerator, each frame is moved when it is used.
        dtype: dtype of the stored frames.
        max_vision_features_cache_size: how many frames' image features are kept (the most
            recently used); the original keeps one.
        memory_dtype: dtype of the stored memories; the original stores bfloat16 and computes
            in float32, `torch.float32` keeps them unrounded.
        bounded: forget what no later frame reads; default True when streaming, False otherwise.
    """

    def __init__(
        self,
        video: "torch.Tensor | LazyFrames | None" = None,
        video_height: int | None = None,
        video_width: int | None = None,
        inference_device: torch.device | str = "cpu",
        inference_state_device: torch.device | str | None = None,
        video_storage_device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        max_vision_features_cache_size: int = 1,
        memory_dtype: torch.dtype = torch.bfloat16,
        bounded: bool | None = None,
    ):
        super().__init__(torch.cat, kind="session", unbounded_hint="start the session with bounded=False")
        self._feature_cache = FeatureCache(max_vision_features_cache_size)
        if not isinstance(memory_dtype, torch.dtype) or not memory_dtype.is_floating_point:
            raise ValueError(f"memory_dtype must be a floating torch dtype such as torch.bfloat16, got {memory_dtype!r}")
        if bounded is not None and not isinstance(bounded, bool):
            raise ValueError(f"bounded must be True, False or None (True when streaming), got {bounded!r}")
        self.inference_device = torch.device(inference_device)
        self.inference_state_device = torch.device(inference_state_device or inference_device)
        self.video_storage_device = torch.device(video_storage_device or inference_device)
        self.dtype = dtype
        self.memory_dtype = memory_dtype
        self.max_vision_features_cache_size = max_vision_features_cache_size
        self.video_height = video_height
        self.video_width = video_width
        self.is_streaming = video is None
        self.bounded = self.is_streaming if bounded is None else bounded
        # An offline video: a tensor on the storage device, or frames read on demand.
        self._video: "torch.Tensor | LazyFrames | None" = None
        # A streamed video: the frames that arrived and are still kept, by index.
        self._streamed_frames: dict[int, torch.Tensor] = {}
        self._num_frames = 0  # frames in the video (streamed: arrived), kept or not
        if isinstance(video, torch.Tensor):
            if video.ndim != 4 or video.shape[0] == 0:
                raise ValueError(f"video must be (num_frames, 3, height, width), got {tuple(video.shape)}")
            self._video = video.to(self.video_storage_device, dtype=dtype)
        elif video is not None:
            self._video = video
        if self._video is not None:
            self._num_frames = len(self._video)
        # The position encoding of a memory is the same for every frame and object: kept once.
        self.memory_position: torch.Tensor | None = None  # (1, 512, mem_dim)

    # ------------------------------------------------------------------ frames

    @property
    def num_frames(self) -> int:
        """Frames in the video (of a stream: that arrived), whether or not they are still kept."""
        return self._num_frames

    @property
    def num_stored_frames(self) -> int:
        """Preprocessed frames held in memory (a lazy video: its cache)."""
        if self.is_streaming:
            return len(self._streamed_frames)
        return getattr(self._video, "num_cached_frames", self._num_frames)

    def add_new_frame(self, pixel_values: torch.Tensor, frame_idx: int | None = None) -> int:
        """Appends a streamed frame, `(3, H, W)` or `(1, 3, H, W)`; returns its index."""
        if not self.is_streaming:
            raise ValueError("frame: only a streaming session (init_video_session() without video) takes new frames")
        if frame_idx is None:
            frame_idx = self._num_frames
        if frame_idx != self._num_frames:
            raise ValueError(
                f"frame_idx={frame_idx}: a new frame is appended after the {self._num_frames} frames already in "
                f"the session, so it must be {self._num_frames} (or None)"
            )
        if pixel_values.ndim == 4 and pixel_values.shape[0] == 1:
            pixel_values = pixel_values[0]
        if pixel_values.ndim != 3 or pixel_values.shape[0] != 3:
            raise ValueError(f"frame must be (3, height, width) or (1, 3, height, width), got {tuple(pixel_values.shape)}")
        self._streamed_frames[frame_idx] = pixel_values.to(self.video_storage_device, dtype=self.dtype)
        self._num_frames += 1
        return frame_idx

    def get_frame(self, frame_idx: int) -> torch.Tensor:
        """(1, 3, H, W) float32 on the inference device."""
        if self.is_streaming:
            frame = self._streamed_frames.get(frame_idx)
            if frame is None:
                raise ValueError(
                    f"frame_idx={frame_idx}: this bounded streaming session no longer keeps that frame (it keeps "
                    "the conditioning frames and the newest one); start the session with bounded=False to "
                    "prompt old frames"
                )
        else:
            frame = self._video[frame_idx]
        return frame.to(self.inference_device).float().unsqueeze(0)

    def stored_frame_device(self, frame_idx: int) -> torch.device:
        """Where a kept frame is stored (`video_storage_device`), before it is moved to be used."""
        if self.is_streaming:
            return self._streamed_frames[frame_idx].device
        return self._video[frame_idx].device

    def check_frame_idx(self, frame_idx, name: str = "frame_idx", allow_next: bool = False) -> None:
        """Raises a ValueError naming `name` unless the frame is in the session.

        `allow_next` also accepts the next frame of a streaming session, so that prompts can be
        given before the frame they belong to arrives (as in transformers' streaming example).
        """
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, int):
            raise ValueError(f"{name} must be an int frame index, got {frame_idx!r}")
        limit = self.num_frames + (1 if allow_next and self.is_streaming else 0)
        if 0 <= frame_idx < limit:
            return
        if self.is_streaming:
            raise ValueError(
                f"{name}={frame_idx} is a frame that has not arrived: the streaming session has "
                f"{self.num_frames} frames (indices 0 to {self.num_frames - 1})"
                + (f"; prompts may also go to the next frame, {self.num_frames}" if allow_next else "")
            )
        raise ValueError(f"{name}={frame_idx} is outside the video: it has {self.num_frames} frames (0 to {self.num_frames - 1})")

    def frames_forgotten(self, frame_idx: int, frames: set[int]) -> None:
        """After tracking `frame_idx` a bounded session drops the features of the frames whose
        results it forgot, and a stream the pixels of the frames before it that no later call
        encodes again (a lazy video reads them again if needed)."""
        for t in frames:
            self._feature_cache.discard(t)
        needed = self.frames_needing_pixels()
        for t in [t for t in self._streamed_frames if t < frame_idx and t not in needed]:
            del self._streamed_frames[t]

    def frame_features(self, model: "EdgeTamVideoModel", frame_idx: int) -> FrameFeatures:
        """The frame's `FrameFeatures` (batch 1) on the inference device, computed once and cached
        for the `max_vision_features_cache_size` most recently used frames."""

        def compute() -> FrameFeatures:
            # A cache of inference results: no autograd graph kept with them, and the trunk may fold.
            with torch.no_grad():
                return model.get_frame_features(self.get_frame(frame_idx)).to(self.inference_state_device)

        return self._feature_cache.get(frame_idx, compute).to(self.inference_device)

    @property
    def num_cached_frames(self) -> int:
        return len(self._feature_cache)

    # ------------------------------------------------------------------ prompts

    def set_video_size(self, height: int, width: int) -> None:
        """The size of the original frames; a streaming session learns it with its first prompts."""
        if self.video_height is not None and (height, width) != (self.video_height, self.video_width):
            raise ValueError(
                f"original_size {(height, width)} differs from the session's frames {(self.video_height, self.video_width)}"
            )
        self.video_height, self.video_width = height, width

    def keep_memory_position(self, memory_position: torch.Tensor) -> None:
        """Keeps the first memory's (1, 512, mem_dim) position encoding: every memory has the same."""
        if self.memory_position is None:
            self.memory_position = memory_position[0:1].clone()

    # ------------------------------------------------------------------ resets

    def reset_inference_session(self) -> None:
        """`reset_tracking_data` and also drop the cached image features."""
        self.reset_tracking_data()
        self._feature_cache.clear()
