"""The inference session of the video model: frames, per-object prompts and results, the memory bank.

It holds what the original `SAM2VideoPredictor.init_state` keeps in a string-keyed dict, as typed
objects, behind the frame / device API of transformers' `Sam2VideoInferenceSession`. Results are
kept per object (the original also keeps them packed per frame; the packed tensors are the
per-object ones stacked, so nothing is lost), which lets objects join after tracking started.
"""

from collections import OrderedDict
from typing import TYPE_CHECKING

import torch

from .frame_ranges import FrameRanges
from .records import NO_OBJECT_SCORE, PendingPrompt, PointPrompt, TrackedObject  # noqa: F401  (NO_OBJECT_SCORE: the model imports it from here)
from .types import FrameFeatures

if TYPE_CHECKING:
    from ..modeling_video import EdgeTamVideoModel
    from .frame_source import LazyFrames

class EdgeTamVideoInferenceSession:
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
        if not isinstance(max_vision_features_cache_size, int) or max_vision_features_cache_size < 1:
            raise ValueError(
                f"max_vision_features_cache_size must be a positive int, got {max_vision_features_cache_size!r}"
            )
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
        # Tracked frames whose results a bounded session has forgotten.
        self.forgotten_frames = FrameRanges()
        # Objects in the order they were first prompted: the original's object index.
        self.objects: dict[int, TrackedObject] = {}
        self.pending_prompts: list[PendingPrompt] = []
        # Frames whose results come from prompts and are reused as they are by tracking
        # (original: "consolidated_frame_inds"), by kind.
        self.consolidated_conditioning_frames: set[int] = set()
        self.consolidated_tracked_frames: set[int] = set()
        self.tracking_started = False
        # The position encoding of a memory is the same for every frame and object: kept once.
        self.memory_position: torch.Tensor | None = None  # (1, 512, mem_dim)
        self._feature_cache: OrderedDict[int, FrameFeatures] = OrderedDict()

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

    def check_frame_kept(self, frame_idx: int, name: str = "frame_idx") -> None:
        """Raises a ValueError naming `name` if a bounded session has forgotten the frame's results."""
        if frame_idx in self.forgotten_frames:
            raise ValueError(
                f"{name}={frame_idx}: this bounded session has forgotten that frame's results (it keeps the "
                "conditioning frames, the frames next to them and the last frames tracked), so it cannot be "
                "corrected or tracked from again; start the session with bounded=False for corrections and "
                "re-propagation over old frames"
            )

    def forget_frames_behind(self, frame_idx: int, reverse: bool, window: int) -> None:
        """After tracking `frame_idx`, forgets in a bounded session the tracked frames that neither
        the next frame nor a correction of this one reads: those more than `window` frames behind
        it in the direction of tracking, except the conditioning frames and the frames within
        `window` of one (tracking the other way from a conditioning frame reads those). A streaming
        session also drops their pixels; a lazy video reads them again if needed."""
        if not self.bounded:
            return
        conditioning = set(self.consolidated_conditioning_frames)
        for tracked in self.objects.values():
            conditioning.update(tracked.results.conditioning)
        step = 1 if reverse else -1

        def forgettable(t: int) -> bool:
            behind = (t - frame_idx) * step > window
            return behind and all(abs(t - c) > window for c in conditioning) and not self._has_pending_prompt(t)

        stale = {t for tracked in self.objects.values() for t in tracked.results.tracked if forgettable(t)}
        stale.update(t for tracked in self.objects.values() for t in tracked.tracked_frames if forgettable(t))
        for t in stale:
            for tracked in self.objects.values():
                tracked.results.tracked.pop(t, None)
                tracked.tracked_frames.pop(t, None)
            self.consolidated_tracked_frames.discard(t)
            self._feature_cache.pop(t, None)
            self.forgotten_frames.add(t)
        # A stream keeps the pixels of its newest frame (for a correction there) and of the
        # conditioning frames (objects joining later get placeholders on them).
        for t in [t for t in self._streamed_frames if t < frame_idx and t not in conditioning]:
            if not self._has_pending_prompt(t):
                del self._streamed_frames[t]

    def remember_frame(self, frame_idx: int) -> None:
        """A frame tracked again holds results again."""
        self.forgotten_frames.discard(frame_idx)

    def _has_pending_prompt(self, frame_idx: int) -> bool:
        return any(prompt.frame_idx == frame_idx for prompt in self.pending_prompts)

    def frame_features(self, model: "EdgeTamVideoModel", frame_idx: int) -> FrameFeatures:
        """The frame's `FrameFeatures` (batch 1) on the inference device, computed once and cached
        for the `max_vision_features_cache_size` most recently used frames."""
        features = self._feature_cache.get(frame_idx)
        if features is None:
            # A cache of inference results: no autograd graph kept with them, and the trunk may fold.
            with torch.no_grad():
                features = model.get_frame_features(self.get_frame(frame_idx))
            self._feature_cache[frame_idx] = features.to(self.inference_state_device)
            while len(self._feature_cache) > self.max_vision_features_cache_size:
                self._feature_cache.popitem(last=False)
        else:
            self._feature_cache.move_to_end(frame_idx)
        return features.to(self.inference_device)

    @property
    def num_cached_frames(self) -> int:
        return len(self._feature_cache)

    # ------------------------------------------------------------------ objects

    @property
    def obj_ids(self) -> list[int]:
        return list(self.objects)

    def get_object(self, obj_id, name: str = "obj_id") -> TrackedObject:
        """The object with this id; a ValueError naming `name` if the session has none."""
        tracked = self.objects.get(obj_id) if isinstance(obj_id, int) and not isinstance(obj_id, bool) else None
        if tracked is None:
            raise ValueError(f"{name}={obj_id!r} is not an object of this session; its objects are {self.obj_ids}")
        return tracked

    def get_or_add_object(self, obj_id) -> TrackedObject:
        """The object with this id, created on first use (objects may join at any time)."""
        if isinstance(obj_id, bool) or not isinstance(obj_id, int):
            raise ValueError(f"obj_ids must be ints, got {obj_id!r}")
        if obj_id not in self.objects:
            self.objects[obj_id] = TrackedObject(obj_id)
        return self.objects[obj_id]

    # ------------------------------------------------------------------ prompts

    def set_video_size(self, height: int, width: int) -> None:
        """The size of the original frames; a streaming session learns it with its first prompts."""
        if self.video_height is not None and (height, width) != (self.video_height, self.video_width):
            raise ValueError(
                f"original_size {(height, width)} differs from the session's frames {(self.video_height, self.video_width)}"
            )
        self.video_height, self.video_width = height, width

    def add_point_prompt(self, obj_id: int, frame_idx: int, prompt: PointPrompt, append: bool = False) -> None:
        """Queues an object's clicks on a frame for the model's next call; they replace its mask
        prompt there, and its earlier clicks unless `append` (then they follow them)."""
        self.check_frame_kept(frame_idx)
        tracked = self.get_or_add_object(obj_id)
        previous = tracked.point_prompts.get(frame_idx)
        if append and previous is not None:
            prompt = PointPrompt(
                torch.cat([previous.coordinates, prompt.coordinates], dim=1),
                torch.cat([previous.labels, prompt.labels], dim=1),
            )
        tracked.point_prompts[frame_idx] = prompt
        tracked.mask_prompts.pop(frame_idx, None)
        self.pending_prompts.append(PendingPrompt(obj_id, frame_idx, points=prompt))

    def add_mask_prompt(self, obj_id: int, frame_idx: int, mask: torch.Tensor) -> None:
        """Queues an object's (1, 1, 1024, 1024) binary mask on a frame; it replaces its clicks there."""
        self.check_frame_kept(frame_idx)
        tracked = self.get_or_add_object(obj_id)
        tracked.mask_prompts[frame_idx] = mask
        tracked.point_prompts.pop(frame_idx, None)
        self.pending_prompts.append(PendingPrompt(obj_id, frame_idx, mask=mask))

    def take_runnable_prompts(self) -> list[PendingPrompt]:
        """Removes and returns the queued prompts whose frame has arrived, in the order given."""
        runnable = [prompt for prompt in self.pending_prompts if prompt.frame_idx < self.num_frames]
        self.pending_prompts = [prompt for prompt in self.pending_prompts if prompt.frame_idx >= self.num_frames]
        return runnable

    def clear_prompts(self, obj_id: int, frame_idx: int) -> None:
        """Forgets an object's prompts on a frame, queued or already run (not the results they made)."""
        tracked = self.get_object(obj_id)
        tracked.point_prompts.pop(frame_idx, None)
        tracked.mask_prompts.pop(frame_idx, None)
        tracked.prompt_results.conditioning.pop(frame_idx, None)
        tracked.prompt_results.tracked.pop(frame_idx, None)
        self.pending_prompts = [
            prompt for prompt in self.pending_prompts if (prompt.obj_id, prompt.frame_idx) != (obj_id, frame_idx)
        ]

    def keep_memory_position(self, memory_position: torch.Tensor) -> None:
        """Keeps the first memory's (1, 512, mem_dim) position encoding: every memory has the same."""
        if self.memory_position is None:
            self.memory_position = memory_position[0:1].clone()

    def remove_object_state(self, obj_id: int) -> None:
        del self.objects[obj_id]
        self.pending_prompts = [prompt for prompt in self.pending_prompts if prompt.obj_id != obj_id]

    # ------------------------------------------------------------------ resets

    def clear_tracking_results(self) -> None:
        """Forget every prompt and result but keep the objects (original: `_reset_tracking_results`)."""
        for tracked in self.objects.values():
            tracked.clear()
        self.pending_prompts.clear()
        self.consolidated_conditioning_frames.clear()
        self.consolidated_tracked_frames.clear()
        self.forgotten_frames.clear()
        self.tracking_started = False

    def reset_tracking_data(self) -> None:
        """Forget every object, prompt and result; keep the frames and cached features
        (original: `reset_state`)."""
        self.clear_tracking_results()
        self.objects.clear()

    def reset_inference_session(self) -> None:
        """`reset_tracking_data` and also drop the cached image features."""
        self.reset_tracking_data()
        self._feature_cache.clear()
