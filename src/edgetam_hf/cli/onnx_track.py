"""`edgetam-hf track --model EXPORT_FOLDER`: the same tracking and files as with PyTorch, computed by
onnxruntime (`edgetam_hf.onnx.OnnxVideoTracker`) instead of the PyTorch session; with `--stream`
a streaming tracker that keeps only the memory window's results (bounded memory)."""

from pathlib import Path

import numpy as np

from ..onnx import OnnxVideoFrame, OnnxVideoTracker
from ..onnx.manifest import read_manifest
from ..onnx.memory_plan import memory_window
from ..video.frame_source import FrameReader
from .media import LiveSource, label_map
from .prompts import ObjectPrompt
from .track import TrackWriter, tracking_range, write_stream_tracking, write_tracking


def track_video_onnx(
    folder: str, video: FrameReader, prompts: list[ObjectPrompt], out_dir: Path, max_frames: int | None, reverse: bool, about: dict
) -> Path:
    """`track_video` on an export folder: prompts, tracking, masks, overlay and scores; returns the overlay's path."""
    tracker = OnnxVideoTracker(folder, video)
    for prompt in sorted(prompts, key=lambda prompt: prompt.frame_idx):  # as the PyTorch command adds them
        _add_prompt(tracker, prompt, prompt.frame_idx)
    start, num_frames = tracking_range(prompts, len(video), max_frames, reverse)
    frames = tracker.propagate(start_frame_idx=start, max_frame_num_to_track=num_frames - 1, reverse=reverse)

    def write(frame: OnnxVideoFrame, writer: TrackWriter) -> int:
        _write(tracker, frame, writer, frame.frame_idx)
        return frame.frame_idx

    return write_tracking(video, frames, write, prompts, out_dir, (start, num_frames, reverse), {**about, "backend": "onnxruntime"})


def track_stream_onnx(folder: str, source: LiveSource, prompts: list[ObjectPrompt], out_dir: Path, max_frames: int | None, about: dict) -> Path:
    """`track_stream` on an export folder: frames added one at a time from the first prompted one,
    each frame's prompts given as it arrives; returns the overlay's path."""
    tracker = OnnxVideoTracker(folder, max_stored_frames=memory_window(read_manifest(folder, video=True)["video"]))

    def track_next(frame, frame_idx: int, writer: TrackWriter) -> np.ndarray:
        tracker_frame_idx = tracker.add_frame(frame)
        output = None
        for prompt in (p for p in prompts if p.frame_idx == frame_idx):
            output = _add_prompt(tracker, prompt, tracker_frame_idx)  # every object's result on the frame
        if output is None:
            output = tracker.track(tracker_frame_idx)
        return _write(tracker, output, writer, frame_idx)

    return write_stream_tracking(source, prompts, out_dir, max_frames, {**about, "backend": "onnxruntime"}, track_next)


def _add_prompt(tracker: OnnxVideoTracker, prompt: ObjectPrompt, tracker_frame_idx: int) -> OnnxVideoFrame:
    return tracker.add_prompt(
        tracker_frame_idx,
        prompt.obj_id,
        points=prompt.points or None,
        labels=prompt.labels or None,
        box=list(prompt.box) if prompt.box is not None else None,
    )


def _write(tracker: OnnxVideoTracker, frame: OnnxVideoFrame, writer: TrackWriter, frame_idx: int) -> np.ndarray:
    """Writes a frame's masks and scores (`frame_idx`: its index in the source); returns its label map."""
    labels = label_map(tracker.masks(frame, binarize=False), frame.object_ids)
    writer.add_labels(labels, frame.object_ids, frame.object_score_logits.tolist(), frame_idx)
    return labels
