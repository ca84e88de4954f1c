"""What a tracker records per object: prompts, results by frame (split as the original splits
them) and prompts waiting to be run. Tensors are the backend's (torch or NumPy), opaque here."""

import itertools
from dataclasses import dataclass, field
from typing import Any

Tensor = Any  # a backend's tensor: torch.Tensor in the PyTorch session, np.ndarray in the ONNX tracker

# The original's `NO_OBJ_SCORE`: mask logits of an object judged absent, and of placeholders.
NO_OBJECT_SCORE = -1024.0
# The object score of a placeholder: the original's consolidation assumes the object is present.
PLACEHOLDER_OBJECT_SCORE = 10.0


@dataclass
class PointPrompt:
    """One object's clicks (and box corners) on one frame, as the model reads them (without the
    padding point)."""

    coordinates: Tensor  # (1, num_points, 2) float32 (x, y) in the model's square input
    labels: Tensor  # (1, num_points) integer: 1 / 0 clicks, 2 / 3 box corners (box first)

    @property
    def num_points(self) -> int:
        return self.labels.shape[1]


_result_serial_numbers = itertools.count()


@dataclass(eq=False)
class FrameResult:
    """One object's result on one frame (original: the compact output dict of a frame).

    A result is never modified once stored; a new one replaces it. Its serial number names it in
    the `computed_from` key of the tracked results that read it.
    """

    # Shapes of the PyTorch session (the ONNX tracker drops the leading 1s).
    mask_logits: Tensor  # (1, 1, 256, 256) float32 low-resolution logits, holes filled
    object_pointer: Tensor  # (1, hidden)
    object_score_logits: Tensor  # (1, 1)
    memory_tokens: Tensor | None = None  # (1, 512, mem_dim) in the memory dtype
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
    mask_prompts: dict[int, Tensor] = field(default_factory=dict)  # (1, 1, 1024, 1024) binary
    # Results with their memory, used by later frames ("output_dict_per_obj").
    results: FrameResults = field(default_factory=FrameResults)
    # Results of prompts not yet merged into `results`, without memory ("temp_output_dict_per_obj").
    prompt_results: FrameResults = field(default_factory=FrameResults)
    # Frames already run for this object -> whether that run was in reverse ("frames_already_tracked").
    tracked_frames: dict[int, bool] = field(default_factory=dict)

    def has_prompt(self, frame_idx: int) -> bool:
        return frame_idx in self.point_prompts or frame_idx in self.mask_prompts

    @property
    def prompted_frames(self) -> list[int]:
        return sorted(set(self.point_prompts) | set(self.mask_prompts))

    def latest(self, frame_idx: int, is_conditioning: bool) -> FrameResult | None:
        """The frame's newest result: a prompt's result not yet consolidated, else the stored one."""
        result = self.prompt_results.of_kind(is_conditioning).get(frame_idx)
        return result if result is not None else self.results.find(frame_idx)

    def clear(self) -> None:
        self.point_prompts.clear()
        self.mask_prompts.clear()
        self.results.clear()
        self.prompt_results.clear()
        self.tracked_frames.clear()


@dataclass
class PendingPrompt:
    """A prompt waiting for the tracker's next call on its frame (one original `add_*` call)."""

    obj_id: int
    frame_idx: int
    points: PointPrompt | None = None
    mask: Tensor | None = None  # (1, 1, 1024, 1024) binary
