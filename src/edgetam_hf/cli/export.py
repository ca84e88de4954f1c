"""`edgetam-hf export MODEL --format onnx --out DIR`: the graphs for onnxruntime (docs/export.md)."""

from .models import add_image_size_argument, load_model, quiet_transformers


def add_arguments(export) -> None:
    export.description = (
        "Export the image encoder and the prompt encoder + mask decoder (and, for a video checkpoint, the memory "
        "encoder and the tracking step) as ONNX graphs with a manifest.json, check them with onnx's checker, and report how far the exported graphs' masks are "
        "from the PyTorch model's on a built-in image (and clip). Nothing is left behind when the export fails."
    )
    export.add_argument("model", help="a converted folder, Meta's original edgetam.pt, or a Hub id")
    export.add_argument(
        "--format",
        choices=("onnx", "executorch"),
        default="onnx",
        help="onnx (graphs for onnxruntime) or executorch (.pte programs with the XNNPACK delegate; needs the executorch package)",
    )
    export.add_argument("--out", required=True, help="the folder to create (must not exist)")
    export.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32", help="precision of the graphs (default float32)"
    )
    add_image_size_argument(export)
    export.add_argument(
        "--quantize",
        choices=("int8",),
        help="static int8 for the graphs where it keeps the masks (image encoder, prompt encoder + mask decoder, "
        "memory encoder); the tracking step stays float32; the manifest records each graph's precision",
    )
    export.add_argument(
        "--calibration",
        metavar="FRAMES_DIR",
        help="with --quantize: a folder of frames (in order) to calibrate on (default: rendered clips of shapes)",
    )
    export.set_defaults(run=run_export)


def run_export(args) -> int:
    if args.quantize and args.dtype != "float32":
        raise ValueError(f"--quantize {args.quantize} is made from float32 graphs; leave out --dtype {args.dtype}")
    if args.calibration and not args.quantize:
        raise ValueError("--calibration needs --quantize int8 (only quantization is calibrated)")
    if args.format == "executorch" and args.dtype != "float32":
        raise ValueError(f"--format executorch exports float32 (or --quantize int8); leave out --dtype {args.dtype}")
    from ..onnx.quantization import calibration_frames, export_int8

    frames = calibration_frames(args.calibration) if args.quantize else None  # read before the minutes of exporting
    import torch

    from ..modeling import EdgeTamModel
    from ..modeling_video import EdgeTamVideoModel
    from ..onnx.accuracy import export_accuracy, video_export_accuracy
    from ..onnx.export import export_onnx
    from ..onnx.manifest import describe_precision
    from ..onnx.predictor import OnnxImagePredictor

    with quiet_transformers():
        model = load_model(EdgeTamModel, args.model, torch.device("cpu"), args.image_size)
        try:  # the video graphs too, when the checkpoint holds the memory weights
            video_model = load_model(EdgeTamVideoModel, args.model, torch.device("cpu"), args.image_size)
        except ValueError:
            video_model = None
    if args.format == "executorch":
        try:
            from ..executorch.export import export_executorch
        except ImportError as error:  # its own environment: docs/export.md, "ExecuTorch"
            raise ValueError(f"--format executorch needs the executorch package ({error}); see docs/export.md") from error

        out_dir = export_executorch(video_model or model, args.out, args.quantize, frames, source=args.model)
    elif args.quantize:
        out_dir = export_int8(video_model or model, args.out, frames, source=args.model)
    else:
        out_dir = export_onnx(video_model or model, args.out, dtype=args.dtype, source=args.model)
    files = ", ".join(sorted(path.name for path in out_dir.iterdir()))
    print(f"wrote {out_dir}: {files} ({describe_precision(out_dir)})")
    print("against the float32 PyTorch model on the sample image:")
    lines = export_accuracy(model, OnnxImagePredictor(out_dir)).lines()
    if video_model is not None and args.format == "onnx":  # the tracker runs onnxruntime only (docs/export.md)
        lines += video_export_accuracy(video_model, out_dir).lines()
    for line in lines:
        print(f"  {line}")
    return 0
