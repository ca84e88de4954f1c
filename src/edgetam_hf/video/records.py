"""What a session records per object: prompts, results by frame (split as the original splits
them) and prompts waiting for the model's next call."""

import itertools
from dataclasses import dataclass, field

import torch

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
