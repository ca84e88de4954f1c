"""`edgetam-hf track`: objects prompted on some frames, tracked through a video.

Writes, in the DAVIS layout, one indexed PNG per tracked frame (`<frame>.png`, pixel value =
object id), an overlay video of every decoded frame (.mp4 with PyAV, else .gif) and
`scores.json` with every object's score on every tracked frame. Tracking runs forward from the
first prompted frame, or with `--reverse` backward from the last one, as SAM 2's demos do.
"""

import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .drawing import draw_prompts, object_color, overlay_labels
from .media import OverlayVideoWriter, Video, label_map, read_video, save_label_png
from .models import add_model_arguments, computing_in, device_from, load_model, processor_for
from .output_folder import prepare_output_folder
from .prompts import ObjectPrompt, add_prompt_arguments, check_inside, group_prompts


def add_arguments(track) -> None:
    track.description = (
        "Track objects through a video. VIDEO is an .mp4 (needs PyAV: pip install "
        '"edgetam-hf[video]") or a folder of JPEG / PNG frames. Writes <frame>.png per tracked frame '
        "(indexed, pixel value = object id, DAVIS palette), overlay.mp4 (overlay.gif without PyAV) and "
        "scores.json. Example: --frame 0 --object 1 --point 210,350 --object 2 --box 50,40,300,260"
    )
    track.add_argument("video", help="an .mp4 file or a folder of frames")
    add_prompt_arguments(track, with_frames=True)
    add_model_arguments(track)
    track.add_argument("--max-frames", type=int, help="track at most N frames, the prompted one included")
    track.add_argument("--reverse", action="store_true", help="track backward from the last prompted frame")
    track.add_argument("--out", default="out/track", help="output folder (default out/track)")
    track.set_defaults(run=run_track)


def run_track(args) -> int:
    from ..modeling_video import EdgeTamVideoModel
    from ..onnx.manifest import is_export_folder

    prompts = group_prompts(args.prompt_sequence)
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames: expected 1 or more, got {args.max_frames}")
    video = read_video(args.video, _frames_needed(prompts, args.max_frames, args.reverse))
    check_prompt_frames(prompts, len(video.frames))
    check_inside(prompts, *video.size, what="video frame")
    about = {"video": args.video, "model": args.model}
    if is_export_folder(args.model):  # an `edgetam-hf export` folder of a video model runs on onnxruntime
        from .onnx_track import track_video_onnx

        track_video_onnx(args.model, video, prompts, Path(args.out), args.max_frames, args.reverse, about)
        return 0
    device = device_from(args.device)
    model = load_model(EdgeTamVideoModel, args.model, device)
    with computing_in(args.dtype, device):
        track_video(model, video, prompts, Path(args.out), args.max_frames, args.reverse, about)
    return 0


def _frames_needed(prompts: list[ObjectPrompt], max_frames: int | None, reverse: bool) -> int | None:
    """How many frames to decode (None: all): tracking never reads past them."""
    last_prompted = max(prompt.frame_idx for prompt in prompts)
    if reverse:
        return last_prompted + 1
    if max_frames is None:
        return None
    return max(last_prompted, min(prompt.frame_idx for prompt in prompts) + max_frames - 1) + 1


def check_prompt_frames(prompts: list[ObjectPrompt], num_frames: int) -> None:
    for prompt in prompts:
        if prompt.frame_idx >= num_frames:
            raise ValueError(f"--frame {prompt.frame_idx}: the video has {num_frames} frames (0 to {num_frames - 1})")


def track_video(
    model, video: Video, prompts: list[ObjectPrompt], out_dir: Path, max_frames: int | None, reverse: bool, about: dict
) -> Path:
    """Prompts the model, tracks, writes the masks, the overlay and the scores; returns the overlay's path."""
    from ..video_processing import EdgeTamVideoProcessor

    processor = processor_for(EdgeTamVideoProcessor, model)
    session = processor.init_video_session(
        video=video.frames, inference_device=model.device, video_storage_device="cpu"
    )
    _add_prompts(model, processor, session, prompts)
    prompted_frames = [prompt.frame_idx for prompt in prompts]
    start = max(prompted_frames) if reverse else min(prompted_frames)
    num_frames = start + 1 if reverse else len(video.frames) - start
    if max_frames is not None:
        num_frames = min(num_frames, max_frames)

    prepare_output_folder(out_dir)
    height = video.size[1]
    labels_by_frame, frame_scores = {}, []
    outputs = model.propagate_in_video_iterator(
        session, start_frame_idx=start, max_frame_num_to_track=num_frames - 1, reverse=reverse
    )
    for output in tqdm(outputs, total=num_frames, desc="tracking", unit="frame", disable=None):
        logits = processor.post_process_masks([output.pred_masks.float().cpu()], [[height, video.size[0]]], binarize=False)[0]
        labels = label_map(logits[:, 0], output.object_ids)
        save_label_png(labels, out_dir / f"{video.names[output.frame_idx]}.png")
        labels_by_frame[output.frame_idx] = labels
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
        f"tracked {len(obj_ids)} object(s) over {len(frame_scores)} frame(s) ({scores['direction']} from frame {start}); "
        f"wrote <frame>.png masks, {overlay_path.name} and scores.json in {out_dir}"
    )
    return overlay_path


def _add_prompts(model, processor, session, prompts: list[ObjectPrompt]) -> None:
    """Every frame's prompts, then one model call per prompted frame (as the original adds them)."""
    for frame_idx in sorted({prompt.frame_idx for prompt in prompts}):
        for prompt in (p for p in prompts if p.frame_idx == frame_idx):
            processor.add_inputs_to_inference_session(
                session,
                frame_idx=frame_idx,
                obj_ids=prompt.obj_id,
                input_points=[[prompt.points]] if prompt.points else None,
                input_labels=[[prompt.labels]] if prompt.points else None,
                input_boxes=[[list(prompt.box)]] if prompt.box is not None else None,
            )
        model(session, frame_idx=frame_idx)


def _frame_entry(video: Video, output, labels: np.ndarray) -> dict:
    scores = output.object_score_logits.float().cpu().tolist()
    return {
        "frame": output.frame_idx,
        "mask": f"{video.names[output.frame_idx]}.png",
        "object_score_logits": {str(obj_id): score for obj_id, score in zip(output.object_ids, scores)},
        "areas": {str(obj_id): int((labels == obj_id).sum()) for obj_id in output.object_ids},
    }


def _write_overlay(stem: Path, video: Video, labels_by_frame: dict, prompts: list[ObjectPrompt], obj_ids: list[int]) -> Path:
    """Every decoded frame in time order; tracked ones tinted, prompted ones with their prompts."""
    colors = {obj_id: object_color(obj_id) for obj_id in obj_ids}
    with OverlayVideoWriter(stem, video.fps, video.size) as writer:
        for frame_idx, frame in enumerate(video.frames):
            if frame_idx in labels_by_frame:
                frame = overlay_labels(frame, labels_by_frame[frame_idx], colors)
            frame_prompts = [prompt for prompt in prompts if prompt.frame_idx == frame_idx]
            writer.add(draw_prompts(frame, frame_prompts) if frame_prompts else frame)
    return writer.path
