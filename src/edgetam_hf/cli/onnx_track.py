"""`edgetam-hf track --model EXPORT_FOLDER`: the same tracking and files, computed by onnxruntime
(`edgetam_hf.onnx.OnnxVideoTracker`) instead of the PyTorch session."""

import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..onnx import OnnxVideoTracker
from ..outputs import EdgeTamVideoSegmentationOutput
from .media import Video, label_map, save_label_png
from .output_folder import prepare_output_folder
from .prompts import ObjectPrompt
from .track import _frame_entry, _write_overlay


def track_video_onnx(
    folder: str, video: Video, prompts: list[ObjectPrompt], out_dir: Path, max_frames: int | None, reverse: bool, about: dict
) -> Path:
    """`track_video` on an export folder: prompts, tracking, masks, overlay and scores; returns the overlay's path."""
    tracker = OnnxVideoTracker(folder, video.frames)
    for prompt in sorted(prompts, key=lambda prompt: prompt.frame_idx):  # as the PyTorch command adds them
        tracker.add_prompt(
            prompt.frame_idx,
            prompt.obj_id,
            points=prompt.points or None,
            labels=prompt.labels or None,
            box=list(prompt.box) if prompt.box is not None else None,
        )
    prompted_frames = [prompt.frame_idx for prompt in prompts]
    start = max(prompted_frames) if reverse else min(prompted_frames)
    num_frames = start + 1 if reverse else len(video.frames) - start
    if max_frames is not None:
        num_frames = min(num_frames, max_frames)

    prepare_output_folder(out_dir)
    labels_by_frame, frame_scores = {}, []
    frames = tracker.propagate(start_frame_idx=start, max_frame_num_to_track=num_frames - 1, reverse=reverse)
    for frame in tqdm(frames, total=num_frames, desc="tracking", unit="frame", disable=None):
        output = EdgeTamVideoSegmentationOutput(
            object_ids=frame.object_ids,
            pred_masks=torch.from_numpy(frame.mask_logits),
            object_score_logits=torch.from_numpy(frame.object_score_logits),
            frame_idx=frame.frame_idx,
        )
        labels = label_map(torch.from_numpy(tracker.masks(frame, binarize=False)), frame.object_ids)
        save_label_png(labels, out_dir / f"{video.names[frame.frame_idx]}.png")
        labels_by_frame[frame.frame_idx] = labels
        frame_scores.append(_frame_entry(video, output, labels))
    frame_scores.sort(key=lambda entry: entry["frame"])
    obj_ids = sorted({prompt.obj_id for prompt in prompts})
    overlay_path = _write_overlay(out_dir / "overlay", video, labels_by_frame, prompts, obj_ids)
    scores = {
        **about,
        "size": list(video.size),
        "fps": video.fps,
        "direction": "reverse" if reverse else "forward",
        "objects": obj_ids,
        "prompts": [prompt.as_json() for prompt in prompts],
        "frames": frame_scores,
    }
    (out_dir / "scores.json").write_text(json.dumps(scores, indent=2))
    print(
        f"tracked {len(obj_ids)} object(s) over {len(frame_scores)} frame(s) ({scores['direction']} from frame {start}) "
        f"on onnxruntime; wrote <frame>.png masks, {overlay_path.name} and scores.json in {out_dir}"
    )
    return overlay_path
