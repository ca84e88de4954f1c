"""onnxruntime (an `edgetam-hf export` folder) against our PyTorch model, per image and per
tracked frame, on the CPU.

Per image, one sample is what a user pays: preprocessing, the image encoder, and one click through
the prompt decoder (3 masks) with the masks upsampled to the image. The two are called in
alternation and the ratio is the median of paired ratios (see `timing.py`).

Per tracked frame (an export of a video model; `--tracked-frames N`, 0 to skip): 1 and 3 objects
clicked on frame 0 of the benchmark clip, then one sample per propagated frame (image encoder,
tracking step, memory), `OnnxVideoTracker` and our PyTorch session advanced in lockstep.

    python -m benchmarks.onnx_runtime --export out/edgetam-onnx --model MODEL [--threads 2] [--repeats 10]

MODEL is what the export was made from (Meta's edgetam.pt, a converted folder or a Hub id).
"""

import argparse
import json

from .environment import install_torchvision_shim, load_average, set_threads
from .timing import paired_ratio, summarize, time_alternating, time_in_lockstep


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--export", required=True, help="the folder `edgetam-hf export` wrote")
    parser.add_argument("--model", required=True, help="the model the export was made from")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of both runtimes (default 2)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tracked-frames", type=int, default=12, help="frames per tracking run (0: images only)")
    args = parser.parse_args(argv)

    install_torchvision_shim()
    import onnxruntime
    import torch

    from edgetam_hf import EdgeTamModel, EdgeTamProcessor
    from edgetam_hf.cli.models import processor_for
    from edgetam_hf.onnx import OnnxImagePredictor

    from .media import benchmark_image  # imports edgetam_hf: after the shim

    set_threads(args.threads)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    predictor = OnnxImagePredictor(args.export, session_options=options)
    model = EdgeTamModel.from_pretrained(args.model).eval()
    processor = processor_for(EdgeTamProcessor, model)
    sample = benchmark_image()
    image, click = sample.image, [list(sample.click)]

    def run_onnxruntime():
        predictor.predict(predictor.encode_image(image), input_points=[click])

    def run_pytorch():
        with torch.no_grad():
            inputs = processor(images=image, input_points=[[click]])
            output = model(**{key: inputs[key] for key in ("pixel_values", "input_points", "input_labels")})
            processor.post_process_masks(output.pred_masks, inputs["original_sizes"])

    load_before = load_average()
    samples, errors = time_alternating(
        {"onnxruntime": run_onnxruntime, "pytorch": run_pytorch}, args.repeats, args.warmup, torch.device("cpu")
    )
    report = {"image": sample.source, "threads": args.threads, **_comparison(samples, errors, load_before)}
    if args.tracked_frames > 0:
        report["per_tracked_frame"] = {
            f"{num_objects}_objects": _tracking_report(args, options, num_objects) for num_objects in (1, 3)
        }
    print(json.dumps(report, indent=2))
    return 0


def _tracking_report(args, options, num_objects: int) -> dict:
    """Seconds per propagated frame, `OnnxVideoTracker` against our PyTorch session, in lockstep."""
    import tempfile
    from pathlib import Path

    import torch

    from edgetam_hf import EdgeTamVideoModel
    from edgetam_hf.cli.models import processor_for
    from edgetam_hf.onnx import OnnxVideoTracker
    from edgetam_hf.video_processing import EdgeTamVideoProcessor

    from .media import decode_frame, write_clip

    model = EdgeTamVideoModel.from_pretrained(args.model).eval()
    processor = processor_for(EdgeTamVideoProcessor, model)
    with tempfile.TemporaryDirectory() as folder:
        clip = write_clip(Path(folder), args.tracked_frames)
        frames = [decode_frame(path) for path in clip.frame_paths]
    clicks = [list(click) for click in clip.clicks[:num_objects]]

    tracker = OnnxVideoTracker(args.export, frames, session_options=options)
    for obj_id, click in enumerate(clicks, start=1):
        tracker.add_prompt(0, obj_id, points=[click])
    session = processor.init_video_session(video=frames)
    processor.add_inputs_to_inference_session(
        session, 0, list(range(1, num_objects + 1)), input_points=[[[click] for click in clicks]], input_labels=[[[1]] * num_objects]
    )
    with torch.no_grad():
        model(session, frame_idx=0)
    streams = {"onnxruntime": iter(tracker.propagate()), "pytorch": iter(model.propagate_in_video_iterator(session))}
    load_before = load_average()
    # The first step reuses frame 0's prompted results; the next one warms the caches up.
    samples, errors = time_in_lockstep(streams, torch.device("cpu"), untimed_steps=2)
    return {"frames_timed": len(samples.get("onnxruntime", [])), **_comparison(samples, errors, load_before)}


def _comparison(samples: dict, errors: dict, load_before) -> dict:
    """Medians, the median paired ratio, the load around the run and any implementation's error."""
    return {
        "load_average_before_after": [load_before, load_average()],
        "median_seconds": {name: summarize(values).median for name, values in samples.items()},
        "ratio_onnxruntime_over_pytorch": paired_ratio(samples["onnxruntime"], samples["pytorch"]).median
        if len(samples) == 2
        else None,
        "errors": errors,
    }


if __name__ == "__main__":
    raise SystemExit(main())
