"""What `OnnxVideoTracker` keeps: each object's results by frame, as the PyTorch session keeps
them (`edgetam_hf.video.session`), in NumPy."""

import itertools
from dataclasses import dataclass, field

import numpy as np

_serial_numbers = itertools.count()


@dataclass
class OnnxVideoFrame:
    """Every object's result on one frame (what `EdgeTamVideoModel` returns per frame)."""

    frame_idx: int
    object_ids: list[int]
    mask_logits: np.ndarray  # (num_objects, 1, 256, 256) float32 low-resolution logits, holes filled
    object_score_logits: np.ndarray  # (num_objects,) float32, > 0 where the object is judged present


@dataclass(eq=False)
class StoredResult:
    """One object's result on one frame; never modified once stored."""

    mask_logits: np.ndarray  # (1, 256, 256) float32
    object_pointer: np.ndarray  # (hidden,) float32
    object_score: np.float32
    memory_tokens: np.ndarray | None = None  # (T, mem_dim), rounded to the memory dtype
    computed_from: tuple | None = None
    serial: int = field(default_factory=lambda: next(_serial_numbers))


@dataclass
class PointPrompt:
    """One object's clicks (and box corners) on one frame, as the tracking step reads them,
    without the padding point."""

    coordinates: np.ndarray  # (1, num_points, 2) float32 (x, y) in the model's square input
    labels: np.ndarray  # (1, num_points) int64: 1 / 0 clicks, 2 / 3 box corners (box first)

    def then(self, later: "PointPrompt") -> "PointPrompt":
        """These clicks followed by `later`'s (clicks added to a frame's earlier ones)."""
        return PointPrompt(
            np.concatenate([self.coordinates, later.coordinates], axis=1), np.concatenate([self.labels, later.labels], axis=1)
        )


@dataclass
class TrackedObject:
    """Everything the tracker knows about one object (the PyTorch session's `TrackedObject`)."""

    obj_id: int
    point_prompts: dict[int, PointPrompt] = field(default_factory=dict)
    mask_prompts: dict[int, np.ndarray] = field(default_factory=dict)  # (1, 1, S, S) float32 in {0, 1}
    results: dict[bool, dict[int, StoredResult]] = field(default_factory=lambda: {True: {}, False: {}})  # by is_conditioning
    prompt_results: dict[bool, dict[int, StoredResult]] = field(default_factory=lambda: {True: {}, False: {}})
    tracked_frames: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse

    def clicks_with(self, frame_idx: int, prompt: PointPrompt, append: bool) -> PointPrompt:
        """The frame's clicks once `prompt` is given: after the earlier ones if `append`, else alone."""
        earlier = self.point_prompts.get(frame_idx)
        return earlier.then(prompt) if append and earlier is not None else prompt

    def set_point_prompt(self, frame_idx: int, prompt: PointPrompt) -> None:
        """Records a frame's clicks; they replace a mask prompt there."""
        self.point_prompts[frame_idx] = prompt
        self.mask_prompts.pop(frame_idx, None)

    def set_mask_prompt(self, frame_idx: int, mask: np.ndarray) -> None:
        """Records a (1, 1, S, S) mask prompt on a frame; it replaces the clicks there."""
        self.mask_prompts[frame_idx] = mask
        self.point_prompts.pop(frame_idx, None)

    def has_prompt(self, frame_idx: int) -> bool:
        return frame_idx in self.point_prompts or frame_idx in self.mask_prompts

    def clear_prompts(self, frame_idx: int) -> None:
        """Forgets the prompts on a frame and the results they made that tracking has not taken in."""
        self.point_prompts.pop(frame_idx, None)
        self.mask_prompts.pop(frame_idx, None)
        for pending in self.prompt_results.values():
            pending.pop(frame_idx, None)

    def clear(self) -> None:
        for records in (self.point_prompts, self.mask_prompts, self.tracked_frames, *self.results.values(), *self.prompt_results.values()):
            records.clear()

    def find(self, frame_idx: int) -> StoredResult | None:
        result = self.results[True].get(frame_idx)
        return result if result is not None else self.results[False].get(frame_idx)

    def latest(self, frame_idx: int, is_conditioning: bool) -> StoredResult | None:
        result = self.prompt_results[is_conditioning].get(frame_idx)
        return result if result is not None else self.find(frame_idx)


def round_to_bfloat16(values: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16 (ties to even), as float32: what torch's `.to(torch.bfloat16)` keeps."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)


class TrackedObjects:
    """The objects of an `OnnxVideoTracker` in the order they were first prompted, and the
    prompted frames whose results tracking reuses as they are (original: "consolidated_frame_inds",
    by kind); removing prompts and objects goes through here (the PyTorch session's bookkeeping)."""

    def __init__(self):
        self.by_id: dict[int, TrackedObject] = {}
        self.consolidated: dict[bool, set[int]] = {True: set(), False: set()}  # by is_conditioning

    def __iter__(self):
        return iter(self.by_id.values())

    def __len__(self) -> int:
        return len(self.by_id)

    @property
    def ids(self) -> list[int]:
        return list(self.by_id)

    def get(self, obj_id) -> TrackedObject:
        """The object with this id; a ValueError naming `obj_id` if there is none."""
        tracked = self.by_id.get(obj_id) if isinstance(obj_id, int) and not isinstance(obj_id, bool) else None
        if tracked is None:
            raise ValueError(f"obj_id={obj_id!r} is not an object of this tracker; its objects are {self.ids}")
        return tracked

    def add(self, tracked: TrackedObject) -> None:
        """Adds an object (after those already there); one already there stays where it is."""
        self.by_id.setdefault(tracked.obj_id, tracked)

    def clear_prompts(self, tracked: TrackedObject, frame_idx: int) -> None:
        """Forgets an object's prompts on a frame; a frame left without any prompt is downgraded."""
        tracked.clear_prompts(frame_idx)
        if not any(other.has_prompt(frame_idx) for other in self):
            self._downgrade_frame(frame_idx)

    def remove(self, tracked: TrackedObject) -> list[int]:
        """Removes an object and its prompts; returns the frames it had prompts on."""
        prompted_frames = sorted(set(tracked.point_prompts) | set(tracked.mask_prompts))
        for frame_idx in prompted_frames:
            self.clear_prompts(tracked, frame_idx)
        del self.by_id[tracked.obj_id]
        return prompted_frames

    def frames_with_prompts(self) -> set[int]:
        """Frames a later consolidation reads: prompted frames and conditioning frames."""
        frames = set(self.consolidated[True])
        for tracked in self:
            frames.update(tracked.results[True], tracked.prompt_results[True], tracked.prompt_results[False])
        return frames

    def forget_tracked_behind(self, frame_idx: int, reverse: bool, max_distance: int) -> None:
        """Drops the tracked results more than `max_distance` frames behind `frame_idx` in the
        direction of tracking (conditioning results stay)."""
        step = 1 if reverse else -1
        for tracked in self:
            for t in [t for t in tracked.results[False] if (t - frame_idx) * step > max_distance]:
                del tracked.results[False][t]

    def _downgrade_frame(self, frame_idx: int) -> None:
        """A frame without prompts is no longer a conditioning frame: its results become ordinary
        tracked ones, recomputed by the next propagation; without any conditioning frame left,
        every result is forgotten (original: `clear_all_prompts_in_frame`, `_reset_tracking_results`)."""
        for consolidated in self.consolidated.values():
            consolidated.discard(frame_idx)
        was_conditioning = False
        for tracked in self:
            result = tracked.results[True].pop(frame_idx, None)
            if result is not None:
                tracked.results[False][frame_idx] = result
                was_conditioning = True
        if was_conditioning:
            for tracked in self:
                tracked.tracked_frames.pop(frame_idx, None)
        if not any(tracked.results[True] for tracked in self):
            for tracked in self:
                tracked.clear()
            for consolidated in self.consolidated.values():
                consolidated.clear()
