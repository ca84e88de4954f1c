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
class TrackedObject:
    """Everything the tracker knows about one object (the PyTorch session's `TrackedObject`)."""

    obj_id: int
    results: dict[bool, dict[int, StoredResult]] = field(default_factory=lambda: {True: {}, False: {}})  # by is_conditioning
    prompt_results: dict[bool, dict[int, StoredResult]] = field(default_factory=lambda: {True: {}, False: {}})
    tracked_frames: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse

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
