"""One benchmark run: builds what the selected cases need, runs them in order, records the run."""

import time
import traceback
from pathlib import Path

import torch

from . import environment
from .image_cases import run_image_encoder, run_prompt_decoder
from .mask_generation import run_mask_generation
from .media import benchmark_image, write_clip
from .memory import method_for
from .models import ORIGINAL, OURS, TRANSFORMERS, build_lineup, import_our_video_classes
from .results import CaseResult, skipped_case
from .timing import summarize
from .video_cases import run_frame_input, run_streaming_memory, run_tracking

# Row labels of cases that are skipped before they can name their sizes.
TITLES = {
    "image_encoder": "image encoder",
    "prompt_decoder": "prompt encoder + mask decoder, 1 click, cached embeddings",
    "mask_generation": "mask-generation pipeline, 1 image",
    "video_frame_input": "video frame: JPEG decode + preprocessing",
    "video_tracking_1": "video tracking, 1 object",
    "video_tracking_3": "video tracking, 3 objects",
    "video_streaming_memory": "memory held while streaming",
}
# Every runner takes (lineup, media, options): media is the image for image cases, the clip for video.
IMAGE_RUNNERS = {
    "image_encoder": run_image_encoder,
    "prompt_decoder": run_prompt_decoder,
    "mask_generation": run_mask_generation,
}
VIDEO_RUNNERS = {
    "video_frame_input": run_frame_input,
    "video_tracking_1": lambda lineup, clip, options: run_tracking(lineup, clip, 1, options),
    "video_tracking_3": lambda lineup, clip, options: run_tracking(lineup, clip, 3, options),
    "video_streaming_memory": run_streaming_memory,
}


def run_suite(options, clip_folder: Path) -> tuple[dict, list[CaseResult]]:
    """Runs `options.case_names`; returns the run's record (settings, machine, ...) and the results."""
    transformers, transformers_missing = environment.import_transformers_edgetam()
    sam2, sam2_missing = environment.import_original_sam2()
    missing = ((TRANSFORMERS, transformers_missing), (ORIGINAL, sam2_missing))
    unavailable = {name: reason for name, reason in missing if reason}
    if transformers is None:
        print(f"NOTE: timing edgetam-hf alone, with no reference column: {transformers_missing}", flush=True)

    image = benchmark_image()
    image_names = [name for name in options.case_names if name in IMAGE_RUNNERS]
    video_names = [name for name in options.case_names if name in VIDEO_RUNNERS]
    clip = write_clip(clip_folder, options.video_frames) if video_names else None
    cases, weights, implementations = [], set(), {OURS}
    with torch.inference_mode():  # no implementation builds autograd graphs while timed
        groups = ((False, image_names, IMAGE_RUNNERS, image), (True, video_names, VIDEO_RUNNERS, clip))
        for video, names, runners, media in groups:
            if not names:
                continue
            missing = _our_video_model_missing() if video else None
            if missing:
                print(f"NOTE: video cases skipped: {missing}", flush=True)
                cases += [skipped_case(name, TITLES[name], missing) for name in names]
                continue
            lineup = build_lineup(video, options, transformers, sam2)
            unavailable.update(lineup.unavailable)
            weights.add(lineup.weights)
            implementations.update(lineup.names)
            for name in names:
                cases.append(_run_case(name, lambda runner=runners[name]: runner(lineup, media, options)))
            del lineup  # the image models are not needed by the video cases

    run = {
        "settings": {
            "device": str(options.device),
            "dtype": options.dtype_name,
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "repeats": options.repeats,
            "warmup": options.warmup,
            "tiny": options.tiny,
            "cases": options.case_names,
            "video_frames": options.video_frames,
            "stream_frames": options.stream_frames,
            "image": image.source,
            "clip": clip.source if clip else None,
        },
        "machine": environment.machine_description(options.device),
        "implementations": {name: _version(name, transformers, sam2) for name in sorted(implementations)},
        "unavailable": {name: reason for name, reason in unavailable.items() if name not in implementations},
        "weights": "; ".join(sorted(weights)) or None,
        "memory_method": method_for(options.device) or "not measurable on this platform",
    }
    return run, cases


def _our_video_model_missing() -> str | None:
    try:
        import_our_video_classes()
    except ImportError as error:
        return f"edgetam_hf's EdgeTamVideoModel / EdgeTamVideoProcessor are not importable yet ({error})"
    return None


def _run_case(name: str, run) -> CaseResult:
    """Runs one case, printing its progress; a harness failure skips the case and the run goes on."""
    print(f"-> {name} ...", flush=True)
    started = time.perf_counter()
    try:
        result = run()
    except Exception as error:  # noqa: BLE001 - one broken case must not lose the others' results
        traceback.print_exc()
        result = skipped_case(name, TITLES[name], f"failed: {type(error).__name__}: {error}")
    print(f"   {_one_line(result)} [{time.perf_counter() - started:.0f} s]", flush=True)
    return result


def _one_line(result: CaseResult) -> str:
    if result.skipped:
        return f"skipped: {result.skipped}"
    parts = []
    for name, samples in result.samples.items():
        summary = summarize(samples)
        parts.append(f"{name} {summary.median * 1e3:.1f} ms" if summary else f"{name} -")
    parts += [f"{name} {held}" for name, held in result.held_memory_mib.items()]
    parts += [f"{name} FAILED: {error}" for name, error in result.errors.items()]
    return ", ".join(parts)


def _version(name: str, transformers, sam2) -> str:
    if name == OURS:
        return f"edgetam-hf {environment.version_of('edgetam-hf')}"
    if name == TRANSFORMERS:
        return f"transformers {transformers.__version__}"
    return f"sam2 from {Path(sam2.__file__).parent}"
