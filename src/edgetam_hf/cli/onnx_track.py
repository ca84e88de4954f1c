"""`edgetam-hf track --model EXPORT_FOLDER`: the same tracking and files as with PyTorch, computed by
onnxruntime (`edgetam_hf.onnx.OnnxVideoTracker`) instead of the PyTorch session."""

from pathlib import Path

import torch

from ..onnx import OnnxVideoTracker
from ..video.frame_source import FrameReader
from .media import label_map
from .prompts import ObjectPrompt
from .track import TrackWriter, tracking_range, write_tracking


def track_video_onnx(
    folder: str, video: FrameReader, prompts: list[ObjectPrompt], out_dir: Path, max_frames: int | None, reverse: bool, about: dict
) -> Path:
    """`track_video` on an export folder: prompts, tracking, masks, overlay and scores; returns the overlay's path."""
    tracker = OnnxVideoTracker(folder, video)
    for prompt in sorted(prompts, key=lambda prompt: prompt.frame_idx):  # as the PyTorch command adds them
        tracker.add_prompt(
            prompt.frame_idx,
            prompt.obj_id,
            points=prompt.points or None,
            labels=prompt.labels or None,
            box=list(prompt.box) if prompt.box is not None else None,
        )
    start, num_frames = tracking_range(prompts, len(video), max_frames, reverse)
    frames = tracker.propagate(start_frame_idx=start, max_frame_num_to_track=num_frames - 1, reverse=reverse)

    def write(frame, writer: TrackWriter) -> int:
        labels = label_map(torch.from_numpy(tracker.masks(frame, binarize=False)), frame.object_ids)
        writer.add_labels(labels, frame.object_ids, frame.object_score_logits.tolist(), frame.frame_idx)
        return frame.frame_idx

    return write_tracking(video, frames, write, prompts, out_dir, (start, num_frames, reverse), {**about, "backend": "onnxruntime"})
