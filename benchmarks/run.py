"""`python -m benchmarks.run`: edgetam-hf against transformers' built-in EdgeTAM (and Meta's `sam2`
when it is importable), same weights, same inputs, one process. See benchmarks/README.md."""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from . import environment

IMAGE_CASES = ("image_encoder", "prompt_decoder", "mask_generation")
VIDEO_CASES = ("video_frame_input", "video_tracking_1", "video_tracking_3", "video_streaming_memory")
CASE_GROUPS = {"image": IMAGE_CASES, "video": VIDEO_CASES, "all": IMAGE_CASES + VIDEO_CASES}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
FIXTURE_CHECKPOINT = "edgetam_random_seed0.pt"
# --tiny: the smoke test's settings; one repetition of everything on tiny models and short clips.
TINY_SETTINGS = {"repeats": 1, "warmup": 0, "video_frames": 3, "stream_frames": 4}


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:index]")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="model and input dtype")
    parser.add_argument("--repeats", type=int, default=10, help="timed repetitions per case (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls (video: frames) first (default 2)")
    parser.add_argument(
        "--cases",
        default="all",
        help=f"comma-separated cases or groups (default all); groups: {', '.join(CASE_GROUPS)}; "
        f"cases: {', '.join(CASE_GROUPS['all'])}",
    )
    parser.add_argument(
        "--mask-generation-points",
        type=int,
        default=32,
        help="points per side of the mask-generation grid (default 32, the original's; one 1800x1200 call "
        "then takes minutes per implementation on 2 CPU cores)",
    )
    parser.add_argument("--video-frames", type=int, default=30, help="frames of the tracking clip (default 30)")
    parser.add_argument(
        "--stream-frames",
        type=int,
        default=300,
        help="frames streamed by the memory case, compared with --video-frames (default 300)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=_default_checkpoint(),
        help="an original-format EdgeTAM checkpoint loaded into every implementation (default: "
        f"$EDGETAM_FIXTURES/{FIXTURE_CHECKPOINT} when set, else transformers' random initialisation)",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny models, one repetition, short clips: the smoke test")
    parser.add_argument("--out", type=Path, default=Path("out/benchmarks"), help="folder for results.json and results.md")
    options = parser.parse_args(argv)
    options.case_names = _case_names(parser, options.cases)
    if options.tiny:
        vars(options).update(TINY_SETTINGS)
        options.weights = None  # a released-size checkpoint does not fit the tiny config
    if options.threads < 1 or options.repeats < 1 or options.warmup < 0 or options.mask_generation_points < 1:
        parser.error("--threads, --repeats and --mask-generation-points must be at least 1, --warmup at least 0")
    if options.video_frames < 2 or options.stream_frames <= options.video_frames:
        parser.error("--video-frames must be at least 2 and --stream-frames larger than it")
    options.device = torch.device(options.device)
    options.dtype_name, options.dtype = options.dtype, DTYPES[options.dtype]
    return options


def main(argv=None) -> int:
    options = parse_arguments(argv)
    environment.set_threads(options.threads)
    # Before anything imports edgetam_hf: transformers would import the broken torchvision first.
    environment.install_torchvision_shim()
    from .suite import run_suite

    load_before = environment.load_average()
    print(f"threads: {torch.get_num_threads()} (interop {torch.get_num_interop_threads()}); device {options.device}, "
          f"{options.dtype_name}; load average before: {load_before}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgetam-bench-clip-") as clip_folder:
        run, cases = run_suite(options, Path(clip_folder))
    load_after = environment.load_average()
    run["load_average"] = {"before": load_before, "after": load_after}
    run["machine_loaded"] = environment.machine_loaded(load_before, load_after, options.threads)
    run["wall_seconds"] = round(time.perf_counter() - started, 1)

    from .report import markdown, write_reports

    json_path, markdown_path = write_reports(options.out, run, cases)
    print(f"\nload average after: {load_after}; wall time {run['wall_seconds']} s\n")
    print(markdown(run, cases))
    print(f"wrote {json_path} and {markdown_path}")
    return 0


def _case_names(parser: argparse.ArgumentParser, spec: str) -> list[str]:
    names = []
    for item in (part.strip() for part in spec.split(",") if part.strip()):
        if item in CASE_GROUPS:
            names += CASE_GROUPS[item]
        elif item in CASE_GROUPS["all"]:
            names.append(item)
        else:
            parser.error(f"unknown case {item!r}; choose from {', '.join([*CASE_GROUPS, *CASE_GROUPS['all']])}")
    return [name for name in CASE_GROUPS["all"] if name in names]  # the table's order, no repeats


def _default_checkpoint() -> Path | None:
    folder = os.environ.get("EDGETAM_FIXTURES")
    if folder and (Path(folder) / FIXTURE_CHECKPOINT).is_file():
        return Path(folder) / FIXTURE_CHECKPOINT
    return None


if __name__ == "__main__":
    sys.exit(main())
