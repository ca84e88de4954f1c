"""onnxruntime (an `edgetam-hf export` folder) against our PyTorch model, per image, on the CPU.

One sample is what a user pays per image: preprocessing, the image encoder, and one click through
the prompt decoder (3 masks) with the masks upsampled to the image. The two are called in
alternation and the ratio is the median of paired ratios (see `timing.py`).

    python -m benchmarks.onnx_runtime --export out/edgetam-onnx --model MODEL [--threads 2] [--repeats 10]

MODEL is what the export was made from (Meta's edgetam.pt, a converted folder or a Hub id).
"""

import argparse
import json

from .environment import install_torchvision_shim, load_average, set_threads
from .timing import paired_ratio, summarize, time_alternating


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--export", required=True, help="the folder `edgetam-hf export` wrote")
    parser.add_argument("--model", required=True, help="the model the export was made from")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of both runtimes (default 2)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
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
    report = {
        "image": sample.source,
        "threads": args.threads,
        "load_average_before_after": [load_before, load_average()],
        "median_seconds": {name: summarize(values).median for name, values in samples.items()},
        "ratio_onnxruntime_over_pytorch": paired_ratio(samples["onnxruntime"], samples["pytorch"]).median
        if len(samples) == 2
        else None,
        "errors": errors,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
