"""What `OnnxVideoTracker` returns per frame, and the rounding of the memories it stores (NumPy)."""

from dataclasses import dataclass

import numpy as np


@dataclass
class OnnxVideoFrame:
    """Every object's result on one frame (what `EdgeTamVideoModel` returns per frame)."""

    frame_idx: int
    object_ids: list[int]
    mask_logits: np.ndarray  # (num_objects, 1, 256, 256) float32 low-resolution logits, holes filled
    object_score_logits: np.ndarray  # (num_objects,) float32, > 0 where the object is judged present


def round_to_bfloat16(values: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16 (ties to even), as float32: what torch's `.to(torch.bfloat16)` keeps."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)
