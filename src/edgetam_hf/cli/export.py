"""`edgetam-hf export MODEL --format onnx --out DIR`: the graphs for onnxruntime (docs/export.md)."""

from .models import add_image_size_argument, load_model, quiet_transformers


def add_arguments(export) -> None:
    export.description = (
        "Export the image encoder and the prompt encoder + mask decoder (and, for a video checkpoint, the memory "
        "encoder and the tracking step) as ONNX graphs with a manifest.json, check them with onnx's checker, and report how far the exported graphs' masks are "
        "from the PyTorch model's on a built-in image (and clip). Nothing is left behind when the export fails."
    )
    export.add_argument("model", help="a converted folder, Meta's original edgetam.pt, or a Hub id")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="the export format (onnx)")
    export.add_argument("--out", required=True, help="the folder to create (must not exist)")
    export.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32", help="precision of the graphs (default float32)"
    )
    add_image_size_argument(export)
    export.set_defaults(run=run_export)


def run_export(args) -> int:
    import torch

    from ..modeling import EdgeTamModel
    from ..modeling_video import EdgeTamVideoModel
    from ..onnx.accuracy import export_accuracy, video_export_accuracy
    from ..onnx.export import export_onnx
    from ..onnx.predictor import OnnxImagePredictor

    with quiet_transformers():
        model = load_model(EdgeTamModel, args.model, torch.device("cpu"), args.image_size)
        try:  # the video graphs too, when the checkpoint holds the memory weights
            video_model = load_model(EdgeTamVideoModel, args.model, torch.device("cpu"), args.image_size)
        except ValueError:
            video_model = None
    out_dir = export_onnx(video_model or model, args.out, dtype=args.dtype, source=args.model)
    files = ", ".join(sorted(path.name for path in out_dir.iterdir()))
    print(f"wrote {out_dir}: {files} ({args.dtype})")
    print("against the float32 PyTorch model on the sample image:")
    lines = export_accuracy(model, OnnxImagePredictor(out_dir)).lines()
    if video_model is not None:
        lines += video_export_accuracy(video_model, out_dir).lines()
    for line in lines:
        print(f"  {line}")
    return 0
