"""`python -m benchmarks.ondevice`: every on-device build side by side on this CPU: size on disk,
image encoder ms, tracked frame ms (1 and 3 objects clicked on frame 0 of the benchmark clip),
peak memory of tracking 3 objects, and each build's times as a ratio of the ONNX float32 build's.

    python -m benchmarks.ondevice --model MODEL --build onnx-fp32=DIR --build onnx-int8=DIR ...
        [--build executorch-fp32=DIR] [--threads 2] [--repeats 10] [--tracked-frames 12]

MODEL (what the builds were exported from) gives the PyTorch float32 and bfloat16 rows. A build is
an `edgetam-hf export` folder, ONNX or ExecuTorch (ExecuTorch's image path only until the tracker
opens its graphs with `open_graph`: its tracked rows are left empty). The first `--build` is the
reference of the ratios. Run it on a quiet machine (timings are medians; the load average before
and after is printed); accuracy is `benchmarks/ondevice_accuracy.py`'s.
"""

import argparse
import json
from pathlib import Path

from .environment import install_torchvision_shim, load_average, set_threads
from .timing import summarize


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="the model the builds were exported from (PyTorch rows)")
    parser.add_argument("--build", action="append", default=[], metavar="NAME=DIR", help="an export folder, reference first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--tracked-frames", type=int, default=12)
    args = parser.parse_args(argv)
    builds = [build.split("=", 1) for build in args.build]
    if not builds or any(len(build) != 2 for build in builds):
        parser.error("--build NAME=DIR, at least once")
    install_torchvision_shim()
    set_threads(args.threads)
    load_before = load_average()
    rows = [pytorch_row(args, dtype) for dtype in ("float32", "bfloat16")]
    rows += [export_row(args, name, Path(folder)) for name, folder in builds]
    reference = rows[2]
    print("| build | size MiB | image encoder ms | x ref | tracked frame ms, 1 object | 3 objects | x ref (3) | peak MiB (3) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['name']} | {_cell(row['size_mib'])} | {_cell(row['encoder_ms'])} | {_ratio(row, reference, 'encoder_ms')} "
            f"| {_cell(row['frame_ms_1'])} | {_cell(row['frame_ms_3'])} | {_ratio(row, reference, 'frame_ms_3')} | {_cell(row['peak_mib_3'])} |"
        )
    print(json.dumps({"threads": args.threads, "load_before": load_before, "load_after": load_average(), "rows": rows}))
    return 0


def export_row(args, name: str, folder: Path) -> dict:
    import numpy as np
    import onnxruntime

    from edgetam_hf.onnx import OnnxImagePredictor, OnnxVideoTracker, read_manifest

    manifest = read_manifest(folder)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    predictor = OnnxImagePredictor(folder, session_options=options)
    side = predictor.image_size
    pixel_values = np.random.default_rng(0).standard_normal((1, 3, side, side)).astype(np.float32)
    row = {
        "name": name,
        "size_mib": sum((folder / graph["file"]).stat().st_size for graph in manifest["graphs"].values()) / 2**20,
        "encoder_ms": _median_ms(lambda: predictor.encode_pixel_values(pixel_values, (side, side)), args),
    }
    if "video" not in manifest or manifest.get("runtime") == "executorch":
        return {**row, "frame_ms_1": None, "frame_ms_3": None, "peak_mib_3": None}

    def tracker(frames, clicks):
        tracked = OnnxVideoTracker(folder, frames, session_options=options)
        for obj_id, click in enumerate(clicks, start=1):
            tracked.add_prompt(0, obj_id, points=[click])
        return iter(tracked.propagate())

    return {**row, **_tracking(args, tracker)}


def pytorch_row(args, dtype_name: str) -> dict:
    import torch

    from edgetam_hf import EdgeTamVideoModel
    from edgetam_hf.cli.models import processor_for
    from edgetam_hf.onnx.graphs import ImageEncoderGraph
    from edgetam_hf.video_processing import EdgeTamVideoProcessor

    dtype = getattr(torch, dtype_name)
    model = EdgeTamVideoModel.from_pretrained(args.model).eval().to(dtype)
    side = model.config.image_size
    pixel_values = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(dtype)
    encoder = ImageEncoderGraph(model)
    processor = processor_for(EdgeTamVideoProcessor, model)

    def session(frames, clicks):
        state = processor.init_video_session(video=frames, dtype=dtype)
        obj_ids = list(range(1, len(clicks) + 1))
        processor.add_inputs_to_inference_session(state, 0, obj_ids, input_points=[[[c] for c in clicks]], input_labels=[[[1]] * len(clicks)])
        model(state, frame_idx=0)
        return iter(model.propagate_in_video_iterator(state))

    with torch.no_grad():
        row = {"name": f"pytorch {dtype_name}", "size_mib": None, "encoder_ms": _median_ms(lambda: encoder(pixel_values), args)}
        return {**row, **_tracking(args, session)}


def _tracking(args, start) -> dict:
    """Median ms per propagated frame for 1 and 3 clicked objects, and the peak memory of 3."""
    import tempfile
    import time

    import torch

    from .media import decode_frame, write_clip
    from .memory import peak_memory_mib

    with tempfile.TemporaryDirectory() as folder:
        clip = write_clip(Path(folder), args.tracked_frames)
        frames = [decode_frame(path) for path in clip.frame_paths]
    row = {}
    for num_objects in (1, 3):
        stream = start(frames, [list(click) for click in clip.clicks[:num_objects]])
        next(stream), next(stream)  # frame 0 reuses its prompted result; the next one warms up
        samples = []
        for _ in range(len(frames) - 2):
            begin = time.perf_counter()
            next(stream)
            samples.append(time.perf_counter() - begin)
        row[f"frame_ms_{num_objects}"] = 1000 * summarize(samples).median
    clicks = [list(click) for click in clip.clicks[:3]]
    row["peak_mib_3"] = peak_memory_mib(lambda: list(start(frames, clicks)), torch.device("cpu"))
    return row


def _median_ms(call, args) -> float:
    import time

    for _ in range(2):
        call()
    samples = []
    for _ in range(args.repeats):
        begin = time.perf_counter()
        call()
        samples.append(time.perf_counter() - begin)
    return 1000 * summarize(samples).median


def _cell(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ratio(row: dict, reference: dict, key: str) -> str:
    if row[key] is None or reference[key] is None:
        return "-"
    return f"{row[key] / reference[key]:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
