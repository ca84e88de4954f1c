"""`edgetam-hf annotate`: semi-supervised video object segmentation of many videos, on one
process or on every process `accelerate launch` starts (docs/annotate.md).

Input: a DAVIS-layout dataset (FRAMES/<video>/<frame>.jpg, MASKS/<video>/<frame>.png, pixel value
= object id; each object's first annotated mask is its prompt, as SAM 2's `tools/vos_inference.py`
with objects appearing later), or a JSON-lines manifest of videos with clicks, boxes or mask
files per object and frame. Output: OUT/<video>/<frame>.png per frame (indexed, DAVIS palette;
frames before the first prompt are empty), tracked forward from the first prompted frame.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from .annotate_jobs import Prompt, VideoJob, davis_jobs, first_mask_prompts, manifest_jobs, parse_video_names, prompt_mask
from .media import read_video, save_label_png
from .models import add_model_arguments, computing_in, device_from, load_model, model_source, processor_for
from .prompts import check_inside

if TYPE_CHECKING:
    import torch


def add_arguments(annotate) -> None:
    annotate.description = (
        "Track every object of many videos and write OUT/<video>/<frame>.png (indexed, pixel value "
        "= object id). Runs on every process of `accelerate launch [--multi_gpu | --cpu --num_processes N] -m "
        "edgetam_hf annotate ...`, videos split by frame count. A rerun skips finished videos (OUT/<video>/.done) "
        "and redoes the rest; failed videos are listed in OUT/failures.jsonl and make the exit status 1."
    )
    videos = annotate.add_argument_group("videos: --frames with --masks (DAVIS layout), or --manifest")
    videos.add_argument("--frames", type=Path, metavar="FRAMES_ROOT", help="FRAMES_ROOT/<video>/<frame>.jpg (DAVIS: JPEGImages/480p)")
    videos.add_argument(
        "--masks", type=Path, metavar="MASKS_ROOT",
        help="MASKS_ROOT/<video>/<frame>.png (DAVIS: Annotations/480p); each object's first mask is its prompt",
    )
    videos.add_argument("--videos", metavar="NAMES|FILE", help="names separated by commas, or a file of names (default: every folder of MASKS_ROOT)")
    videos.add_argument("--manifest", type=Path, metavar="FILE", help="JSON lines: {\"video\": ..., \"name\": ..., \"prompts\": [...]} (docs/annotate.md)")
    annotate.add_argument("--out", type=Path, required=True, metavar="OUT_ROOT", help="where OUT_ROOT/<video>/<frame>.png go")
    add_model_arguments(annotate)
    annotate.set_defaults(run=run_annotate)


def run_annotate(args) -> int:
    from accelerate import PartialState

    from ..modeling_video import EdgeTamVideoModel
    from ..video_processing import EdgeTamVideoProcessor
    from .annotate_driver import run_jobs

    args.model = model_source(args.model)
    jobs = _jobs_from(args)
    state = PartialState(cpu=_runs_on_cpu(args.device))
    device = state.device if args.device == "auto" else device_from(args.device)
    model = load_model(EdgeTamVideoModel, args.model, device, args.image_size)
    processor = processor_for(EdgeTamVideoProcessor, model)

    def annotate_one(job: VideoJob, out_dir: Path, progress: tqdm) -> dict:
        with computing_in(args.dtype, device):
            return annotate_video(model, processor, job, out_dir, progress)

    return run_jobs(jobs, args.out, annotate_one, state)


def _runs_on_cpu(device_name: str) -> bool:
    """accelerate groups processes on CPUs only when told so (its launcher's --cpu sets
    ACCELERATE_USE_CPU, which its PartialState does not read); without it, processes that torchrun
    started on a machine with no accelerator would each believe they are alone and all do every video."""
    from accelerate.utils import parse_flag_from_env

    import torch

    accelerator_api = getattr(torch, "accelerator", None)  # torch >= 2.6
    has_accelerator = accelerator_api.current_accelerator() is not None if accelerator_api else torch.cuda.is_available()
    return parse_flag_from_env("ACCELERATE_USE_CPU") or device_name == "cpu" or not has_accelerator


def _jobs_from(args) -> list[VideoJob]:
    if args.manifest is not None:
        if args.frames is not None or args.masks is not None or args.videos is not None:
            raise ValueError("--manifest: give either --manifest, or --frames with --masks (and --videos), not both")
        return manifest_jobs(args.manifest)
    if args.frames is None or args.masks is None:
        raise ValueError("give --frames FRAMES_ROOT with --masks MASKS_ROOT (DAVIS layout), or --manifest FILE")
    names = parse_video_names(args.videos) if args.videos is not None else None
    return davis_jobs(args.frames, args.masks, names)


def annotate_video(model, processor, job: VideoJob, out_dir: Path, progress: tqdm) -> dict:
    """Prompts and tracks one video, writing <frame>.png into `out_dir`; returns the facts of its
    done marker."""
    video = read_video(str(job.source))
    davis = job.masks_dir is not None
    prompts = first_mask_prompts(job.masks_dir, video) if davis else job.prompts
    for prompt in prompts:
        if prompt.frame_idx >= len(video.frames):
            raise ValueError(f"{job.source}: a prompt of object {prompt.obj_id} is on frame {prompt.frame_idx}, the video has {len(video.frames)}")
    check_inside(prompts, *video.size, what=f"frames of {job.source}")

    session = processor.init_video_session(video=video.frames, inference_device=model.device, video_storage_device="cpu")
    _add_prompts(model, processor, session, prompts, video.size, davis)
    width, height = video.size
    start = min(prompt.frame_idx for prompt in prompts)
    for frame_idx in range(start):  # before any prompt there is nothing to track: empty masks
        save_label_png(np.zeros((height, width), dtype=np.uint8), out_dir / f"{video.names[frame_idx]}.png")
        progress.update(1)
    for output in model.propagate_in_video_iterator(session, start_frame_idx=start):
        logits = processor.post_process_masks([output.pred_masks.float().cpu()], [[height, width]], binarize=False)[0]
        save_label_png(lowest_id_on_top(logits[:, 0] > 0, output.object_ids), out_dir / f"{video.names[output.frame_idx]}.png")
        progress.update(1)
    return {"frames": len(video.frames), "objects": sorted({prompt.obj_id for prompt in prompts})}


def lowest_id_on_top(object_masks: "torch.Tensor", obj_ids: list[int]) -> np.ndarray:
    """(num_objects, height, width) bool -> (height, width) uint8 ids, the lowest id taking a pixel
    several objects claim, as SAM 2's tools/vos_inference.py writes VOS results. Unlike `track`'s
    most-confident-wins, this reads only each mask's sign, so float noise between machines or
    thread counts (which moves logits by ~1e-6) cannot hand a pixel from one object to another
    where two objects' logits are close."""
    labels = np.zeros(object_masks.shape[-2:], dtype=np.uint8)
    for row in sorted(range(len(obj_ids)), key=lambda r: obj_ids[r], reverse=True):
        labels[object_masks[row].numpy()] = obj_ids[row]
    return labels


def _add_prompts(model, processor, session, prompts: list[Prompt], size: tuple[int, int], davis: bool) -> None:
    """A frame's prompts, then one model call on it, frame by frame in order."""
    for frame_idx in sorted({prompt.frame_idx for prompt in prompts}):
        for prompt in (p for p in prompts if p.frame_idx == frame_idx):
            if prompt.mask_file is not None:
                inputs = {"input_masks": [prompt_mask(prompt, size, davis)]}
            else:
                inputs = {
                    "input_points": [[prompt.points]] if prompt.points else None,
                    "input_labels": [[prompt.labels]] if prompt.points else None,
                    "input_boxes": [[list(prompt.box)]] if prompt.box is not None else None,
                }
            processor.add_inputs_to_inference_session(session, frame_idx=frame_idx, obj_ids=prompt.obj_id, **inputs)
        model(session, frame_idx=frame_idx)
