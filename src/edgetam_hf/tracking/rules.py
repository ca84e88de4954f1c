"""The settings the tracking rules read, and the rule of which stored memories a tracked frame
reads (original: step 1 of `SAM2Base._prepare_memory_conditioned_features`).

Spatial memories, in this order: every selected conditioning frame (temporal slot t_pos 0),
then the `num_maskmem - 1` frames just before the frame in the direction of tracking, oldest
first (t_pos 1 .. num_maskmem - 1), where a result exists. Object pointers: the selected
conditioning frames not in the future (by their distance in frames), then up to
`max_object_pointers_in_encoder - 1` frames before it, nearest first. A conditioning frame left
out of the selection (`max_cond_frame_num`) serves as an ordinary recent frame.
"""

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

from .records import FrameResults


@dataclasses.dataclass(frozen=True)
class TrackingRules:
    """The model settings the rules read (a video config's fields, an export manifest's "video")."""

    num_maskmem: int
    max_object_pointers_in_encoder: int
    max_cond_frame_num: int
    multimask_output_in_sam: bool
    multimask_min_pt_num: int
    multimask_max_pt_num: int
    multimask_output_for_tracking: bool

    @classmethod
    def read(cls, settings) -> "TrackingRules":
        """From an `EdgeTamVideoConfig` (attributes) or a manifest's "video" entry (keys)."""
        if isinstance(settings, Mapping):
            return cls(**{field.name: settings[field.name] for field in dataclasses.fields(cls)})
        return cls(**{field.name: getattr(settings, field.name) for field in dataclasses.fields(cls)})

    @property
    def memory_window(self) -> int:
        """How far behind a tracked frame (in the direction of tracking) the tracked results it
        reads may lie: `num_maskmem - 1` spatial memories, `max_object_pointers_in_encoder - 1`
        pointers. A bounded tracker keeps at least this many frames behind the last one."""
        return max(self.num_maskmem, self.max_object_pointers_in_encoder) - 1

    def use_multimask(self, is_initial_conditioning: bool, num_points: int) -> bool:
        """Three masks for a first click (a box counts as two points) and, in EdgeTAM, when tracking."""
        return (
            self.multimask_output_in_sam
            and (is_initial_conditioning or self.multimask_output_for_tracking)
            and self.multimask_min_pt_num <= num_points <= self.multimask_max_pt_num
        )

    def frames_read(self, frame_idx: int, reverse: bool, num_frames: int) -> list[int]:
        """The frames whose tracked results `memory_plan` may read for `frame_idx`, nearest first."""
        step = 1 if reverse else -1
        frames = (frame_idx + step * distance for distance in range(1, self.memory_window + 1))
        return [t for t in frames if 0 <= t < num_frames]


class MemoryEntry(NamedTuple):
    """One stored result a frame reads: for a spatial memory `position` is its temporal slot
    t_pos (0 for conditioning frames); for an object pointer, its distance in frames."""

    position: int
    is_conditioning: bool  # where the result is stored
    frame_idx: int


class MemoryPlan(NamedTuple):
    """The memories of one frame for one object, in the original's order. Objects with equal
    plans are tracked in one batch."""

    spatial: tuple[MemoryEntry, ...]
    pointers: tuple[MemoryEntry, ...]

    @property
    def entries(self) -> tuple[MemoryEntry, ...]:
        return self.spatial + self.pointers


def select_closest_conditioning_frames(
    frame_idx: int, conditioning_frames: list[int], max_num: int
) -> tuple[list[int], list[int]]:
    """Up to `max_num` conditioning frames, -1 for all (original: `select_closest_cond_frames`):
    the closest one before the frame, the closest one at or after it, then the temporally
    closest others. Returns `(selected, unselected)`, selected in that order."""
    if max_num == -1 or len(conditioning_frames) <= max_num:
        return list(conditioning_frames), []
    if max_num < 2:
        raise ValueError(f"max_cond_frame_num must be -1 or at least 2, got {max_num}")
    before = [t for t in conditioning_frames if t < frame_idx]
    after = [t for t in conditioning_frames if t >= frame_idx]
    selected = ([max(before)] if before else []) + ([min(after)] if after else [])
    others = sorted((t for t in conditioning_frames if t not in selected), key=lambda t: abs(t - frame_idx))
    selected.extend(others[: max_num - len(selected)])
    return selected, [t for t in conditioning_frames if t not in selected]


def memory_plan(rules: TrackingRules, results: FrameResults, frame_idx: int, reverse: bool, num_frames: int) -> MemoryPlan:
    """The memories an object with `results` reads when its frame `frame_idx` is tracked (see
    the module docstring)."""
    selected, unselected = select_closest_conditioning_frames(frame_idx, list(results.conditioning), rules.max_cond_frame_num)
    step = 1 if reverse else -1  # towards the frames already tracked

    def stored(t: int, position: int) -> MemoryEntry | None:
        # a tracked result, or else a conditioning one that was not selected
        if t in results.tracked:
            return MemoryEntry(position, False, t)
        return MemoryEntry(position, True, t) if t in unselected else None

    spatial = [MemoryEntry(0, True, t) for t in selected]
    spatial += [stored(frame_idx + step * (rules.num_maskmem - t_pos), t_pos) for t_pos in range(1, rules.num_maskmem)]
    is_past = (lambda t: t >= frame_idx) if reverse else (lambda t: t <= frame_idx)
    pointers = [MemoryEntry(abs(frame_idx - t), True, t) for t in selected if is_past(t)]
    for distance in range(1, min(num_frames, rules.max_object_pointers_in_encoder)):
        previous = frame_idx + step * distance
        if not 0 <= previous < num_frames:
            break
        pointers.append(stored(previous, distance))
    return MemoryPlan(tuple(e for e in spatial if e is not None), tuple(e for e in pointers if e is not None))
