"""One object's prompt on one frame for `OnnxVideoTracker`, checked and in the tracking step's
terms (NumPy, no torch): clicks and a box as point tokens, a mask at the model's input size. The
rules are `EdgeTamVideoProcessor.add_inputs_to_inference_session`'s."""

import numpy as np

from ..conventions import LABEL_PADDING as PADDING_LABEL
from .image_ops import mask_prompt_at_model_size
from .prompts import prompt_tokens
from ..tracking.records import PointPrompt, TrackedObject


def check_prompt(obj_id, points, box, mask, clear_old_inputs: bool, earlier: TrackedObject | None, frame_idx: int) -> None:
    """A ValueError naming what is wrong with a prompt; `earlier` is the object if it exists."""
    if isinstance(obj_id, bool) or not isinstance(obj_id, int):
        raise ValueError(f"obj_id must be an int, got {obj_id!r}")
    if mask is not None and (points is not None or box is not None):
        raise ValueError("mask cannot be given together with points or box")
    if mask is None and points is None and box is None:
        raise ValueError("give points and / or a box, or a mask")
    if box is not None and not clear_old_inputs:
        raise ValueError("box needs clear_old_inputs=True: a box must come before any click of the object")
    if clear_old_inputs or earlier is None:
        return
    other_kind = earlier.point_prompts if mask is not None else earlier.mask_prompts
    if frame_idx in other_kind:
        raise ValueError(
            f"{'mask' if mask is not None else 'points'} for object {obj_id} on frame {frame_idx} would mix masks and "
            "points; pass clear_old_inputs=True to replace the object's prompts on that frame"
        )


def point_prompt(points, labels, box, video_size: tuple[int, int], image_size: int) -> PointPrompt:
    """Clicks ([[x, y], ...] video pixels, labels default 1) and a box ([x0, y0, x1, y1]) -> tokens."""
    coordinates, token_labels = prompt_tokens(
        [points] if points is not None else None,
        [labels] if labels is not None else None,
        [box] if box is not None else None,
        video_size,
        image_size,
    )
    return PointPrompt(coordinates[:, :-1], token_labels[:, :-1])  # without the padding point


def with_padding_point(prompt: PointPrompt) -> tuple[np.ndarray, np.ndarray]:
    """(1, N + 1, 2) coordinates and (1, N + 1) labels: the tokens and the padding point the
    prompt encoder appends."""
    coordinates = np.concatenate([prompt.coordinates, np.zeros((1, 1, 2), dtype=np.float32)], axis=1)
    labels = np.concatenate([prompt.labels, np.full((1, 1), PADDING_LABEL, dtype=np.int64)], axis=1)
    return coordinates, labels


def mask_prompt(mask, video_size: tuple[int, int], image_size: int) -> np.ndarray:
    """A (height, width) mask of the frame (nonzero: foreground) -> (1, 1, S, S) float32 in {0, 1}."""
    mask = np.asarray(mask)
    while mask.ndim > 2 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != tuple(video_size):
        raise ValueError(f"mask must be a (height, width) = {tuple(video_size)} mask of the frame, got {mask.shape}")
    return mask_prompt_at_model_size(mask, image_size)
