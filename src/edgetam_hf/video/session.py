"""The inference session of the video model: frames, per-object prompts and results, the memory bank.

It holds what the original `SAM2VideoPredictor.init_state` keeps in a string-keyed dict, as typed
objects, behind the frame / device API of transformers' `Sam2VideoInferenceSession`. Results are
kept per object (the original also keeps them packed per frame; the packed tensors are the
per-object ones stacked, so nothing is lost), which lets objects join after tracking started.
"""

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from .types import FrameFeatures

if TYPE_CHECKING:
    from ..modeling_video import EdgeTamVideoModel

# The original's `NO_OBJ_SCORE`: mask logits of an object judged absent, and of placeholders.
NO_OBJECT_SCORE = -1024.0
# The object score of a placeholder: the original's consolidation assumes the object is present.
PLACEHOLDER_OBJECT_SCORE = 10.0


@dataclass
class PointPrompt:
    """One object's clicks (and box corners) on one frame, as the model reads them."""

    coordinates: torch.Tensor  # (1, num_points, 2) float32 (x, y) in the 1024x1024 model input
    labels: torch.Tensor  # (1, num_points) int32: 1 / 0 clicks, 2 / 3 box corners (box first)


_result_serial_numbers = itertools.count()


@dataclass(eq=False)
class FrameResult:
    """One object's result on one frame (original: the compact output dict of a frame).

    A result is never modified once stored; a new one replaces it. Its serial number names it in
    the `computed_from` key of the tracked results that read it.
    """

    mask_logits: torch.Tensor  # (1, 1, 256, 256) float32 low-resolution logits, holes filled
    object_pointer: torch.Tensor  # (1, hidden)
    object_score_logits: torch.Tensor  # (1, 1)
    memory_tokens: torch.Tensor | None = None  # (1, 512, mem_dim) in the session's memory dtype
    computed_from: tuple | None = None  # for a tracked result: everything its computation read
    serial: int = field(default_factory=lambda: next(_result_serial_numbers))


@dataclass
class FrameResults:
    """One object's results by frame, split as the original splits them."""

    conditioning: dict[int, FrameResult] = field(default_factory=dict)  # "cond_frame_outputs"
    tracked: dict[int, FrameResult] = field(default_factory=dict)  # "non_cond_frame_outputs"

    def of_kind(self, conditioning: bool) -> dict[int, FrameResult]:
        return self.conditioning if conditioning else self.tracked

    def find(self, frame_idx: int) -> FrameResult | None:
        """The frame's result, a conditioning one first (the original's look-up order)."""
        result = self.conditioning.get(frame_idx)
        return result if result is not None else self.tracked.get(frame_idx)

    def clear(self) -> None:
        self.conditioning.clear()
        self.tracked.clear()


@dataclass
class TrackedObject:
    """Everything the session knows about one object (original: the `*_per_obj` entries)."""

    obj_id: int
    point_prompts: dict[int, PointPrompt] = field(default_factory=dict)
    mask_prompts: dict[int, torch.Tensor] = field(default_factory=dict)  # (1, 1, 1024, 1024) binary
    # Results with their memory, used by later frames ("output_dict_per_obj").
    results: FrameResults = field(default_factory=FrameResults)
    # Results of prompts not yet merged into `results`, without memory ("temp_output_dict_per_obj").
    prompt_results: FrameResults = field(default_factory=FrameResults)
    # Frames already run for this object -> whether that run was in reverse ("frames_already_tracked").
    tracked_frames: dict[int, bool] = field(default_factory=dict)

    def has_prompt(self, frame_idx: int) -> bool:
        return frame_idx in self.point_prompts or frame_idx in self.mask_prompts

    def clear(self) -> None:
        self.point_prompts.clear()
        self.mask_prompts.clear()
        self.results.clear()
        self.prompt_results.clear()
        self.tracked_frames.clear()


@dataclass
class PendingPrompt:
    """A prompt added by the processor that the model's next call runs (one original `add_*` call)."""

    obj_id: int
    frame_idx: int
    points: PointPrompt | None = None
    mask: torch.Tensor | None = None  # (1, 1, 1024, 1024) binary


class EdgeTamVideoInferenceSession:
    """The state of tracking objects through one video.

    Args:
        video: `(num_frames, 3, 1024, 1024)` preprocessed frames, or None to stream frames in.
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
    """

    def __init__(
        self,
        video: torch.Tensor | None = None,
        video_height: int | None = None,
        video_width: int | None = None,
        inference_device: torch.device | str = "cpu",
        inference_state_device: torch.device | str | None = None,
        video_storage_device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        max_vision_features_cache_size: int = 1,
        memory_dtype: torch.dtype = torch.bfloat16,
    ):
        if not isinstance(max_vision_features_cache_size, int) or max_vision_features_cache_size < 1:
            raise ValueError(
                f"max_vision_features_cache_size must be a positive int, got {max_vision_features_cache_size!r}"
            )
        if not isinstance(memory_dtype, torch.dtype) or not memory_dtype.is_floating_point:
            raise ValueError(f"memory_dtype must be a floating torch dtype such as torch.bfloat16, got {memory_dtype!r}")
        self.inference_device = torch.device(inference_device)
        self.inference_state_device = torch.device(inference_state_device or inference_device)
        self.video_storage_device = torch.device(video_storage_device or inference_device)
        self.dtype = dtype
        self.memory_dtype = memory_dtype
        self.max_vision_features_cache_size = max_vision_features_cache_size
        self.video_height = video_height
        self.video_width = video_width
        self.is_streaming = video is None
        self.frames: dict[int, torch.Tensor] = {}
        if video is not None:
            if video.ndim != 4 or video.shape[0] == 0:
                raise ValueError(f"video must be (num_frames, 3, height, width), got {tuple(video.shape)}")
            self.frames = dict(enumerate(video.to(self.video_storage_device, dtype=dtype)))
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
        return len(self.frames)

    def add_new_frame(self, pixel_values: torch.Tensor, frame_idx: int | None = None) -> int:
        """Appends a streamed frame, `(3, H, W)` or `(1, 3, H, W)`; returns its index."""
        if frame_idx is None:
            frame_idx = self.num_frames
        if frame_idx != self.num_frames:
            raise ValueError(
                f"frame_idx={frame_idx}: a new frame is appended after the {self.num_frames} frames already in "
                f"the session, so it must be {self.num_frames} (or None)"
            )
        if pixel_values.ndim == 4 and pixel_values.shape[0] == 1:
            pixel_values = pixel_values[0]
        if pixel_values.ndim != 3 or pixel_values.shape[0] != 3:
            raise ValueError(f"frame must be (3, height, width) or (1, 3, height, width), got {tuple(pixel_values.shape)}")
        self.frames[frame_idx] = pixel_values.to(self.video_storage_device, dtype=self.dtype)
        return frame_idx

    def get_frame(self, frame_idx: int) -> torch.Tensor:
        """(1, 3, H, W) float32 on the inference device."""
        return self.frames[frame_idx].to(self.inference_device).float().unsqueeze(0)

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

    def frame_features(self, model: "EdgeTamVideoModel", frame_idx: int) -> FrameFeatures:
        """The frame's `FrameFeatures` (batch 1) on the inference device, computed once and cached
        for the `max_vision_features_cache_size` most recently used frames."""
        features = self._feature_cache.get(frame_idx)
        if features is None:
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

    def add_point_prompt(self, obj_id: int, frame_idx: int, prompt: PointPrompt) -> None:
        """Queues an object's clicks on a frame for the model's next call; they replace its mask prompt there."""
        tracked = self.get_or_add_object(obj_id)
        tracked.point_prompts[frame_idx] = prompt
        tracked.mask_prompts.pop(frame_idx, None)
        self.pending_prompts.append(PendingPrompt(obj_id, frame_idx, points=prompt))

    def add_mask_prompt(self, obj_id: int, frame_idx: int, mask: torch.Tensor) -> None:
        """Queues an object's (1, 1, 1024, 1024) binary mask on a frame; it replaces its clicks there."""
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
