"""The `edgetam-hf` command line (also `python -m edgetam_hf`)."""

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

RANDOM_WEIGHTS_BANNER = (
    "NOTE: no checkpoint given, so the model has deterministic RANDOM weights: the masks show that "
    "the pipeline runs end to end but are meaningless. Pass --checkpoint edgetam.pt (Meta's file) for real masks."
)
OVERLAY_COLORS = np.array([(255, 64, 64), (64, 160, 255), (255, 200, 0), (64, 220, 120)], dtype=np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="edgetam-hf", description="EdgeTAM segmentation from the command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="segment two objects of the bundled sample image from boxes")
    demo.add_argument("--checkpoint", help="Meta's original edgetam.pt; random weights when omitted")
    demo.add_argument("--out", default="out/demo", help="folder for the masks and overlay (default: out/demo)")
    demo.set_defaults(run=run_demo)
    _add_convert_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "convert" and (args.private or args.revision) and not args.push_to_hub:
        parser.error("--private and --revision apply to --push-to-hub")
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"edgetam-hf {args.command}: {error}", file=sys.stderr)
        return 2


def run_demo(args) -> int:
    from .configuration import EdgeTamConfig
    from .modeling import EdgeTamModel
    from .processing import EdgeTamProcessor
    from .sample_media import SAMPLE_BOXES, render_sample_image
    from .weights import load_original_state_dict, read_original_checkpoint

    torch.manual_seed(0)
    model = EdgeTamModel(EdgeTamConfig()).eval()
    if args.checkpoint:
        load_original_state_dict(model, read_original_checkpoint(args.checkpoint))
    else:
        print(RANDOM_WEIGHTS_BANNER)

    image = render_sample_image()
    processor = EdgeTamProcessor()
    inputs = processor(images=image, input_boxes=[[list(box) for box in SAMPLE_BOXES]], return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs, multimask_output=False)
    masks = processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"])[0][:, 0]  # (objects, H, W)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    image.save(out_dir / "image.png")
    for index, mask in enumerate(masks):
        Image.fromarray(mask.numpy().astype(np.uint8) * 255).save(out_dir / f"mask_{index}.png")
    _overlay(image, masks.numpy()).save(out_dir / "overlay.png")
    scores = {
        "iou_scores": outputs.iou_scores[0, :, 0].tolist(),
        "object_score_logits": outputs.object_score_logits[0, :, 0].tolist(),
        "random_weights": not args.checkpoint,
    }
    (out_dir / "scores.json").write_text(json.dumps(scores, indent=2))
    print(f"wrote {out_dir}/overlay.png, mask_*.png and scores.json")
    return 0


def _overlay(image: Image.Image, masks: np.ndarray) -> Image.Image:
    """Blends one colour per mask into the image at 50 %."""
    blended = np.asarray(image, dtype=np.float32).copy()
    for index, mask in enumerate(masks.astype(bool)):
        blended[mask] = 0.5 * blended[mask] + 0.5 * OVERLAY_COLORS[index % len(OVERLAY_COLORS)]
    return Image.fromarray(blended.astype(np.uint8))


def _add_convert_parser(commands) -> None:
    convert = commands.add_parser(
        "convert",
        help="convert Meta's edgetam.pt into a save_pretrained folder",
        description="Convert Meta's original EdgeTAM checkpoint into a save_pretrained folder (config.json, "
        "model.safetensors, processor config, model card). Nothing is written when a key is unmapped, "
        "missing or of the wrong shape, or when the verification fails.",
    )
    convert.add_argument("checkpoint", help="Meta's original checkpoint ({'model': state_dict}), e.g. edgetam.pt")
    convert.add_argument("output_dir", help="the folder to write (must be empty or absent unless --overwrite)")
    convert.add_argument(
        "--model",
        choices=("image", "video", "both"),
        default="both",
        help="image: the image model only; video or both (default; the same folder): every weight, one "
        "folder that loads into EdgeTamVideoModel and EdgeTamModel, as in transformers",
    )
    convert.add_argument(
        "--verify",
        action="store_true",
        help="run the folder's models on a built-in image and box against the mapped weights (and against "
        "Meta's sam2 package when it is importable)",
    )
    convert.add_argument("--overwrite", action="store_true", help="replace output_dir if it exists")
    convert.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the verified folder to this Hub model repo")
    convert.add_argument("--private", action="store_true", help="create the Hub repo as private")
    convert.add_argument("--revision", help="Hub branch to push to (created if missing)")
    convert.set_defaults(run=run_convert)


def run_convert(args) -> int:
    from .conversion import HubPushError, VerificationError, convert_checkpoint, push_to_hub

    try:
        with _quiet_transformers_progress():  # this command prints its own summary
            result = convert_checkpoint(
                args.checkpoint,
                args.output_dir,
                model=args.model,
                verify=args.verify or bool(args.push_to_hub),  # only a verified folder is pushed
                overwrite=args.overwrite,
                repo_id=args.push_to_hub,
            )
    except VerificationError as error:
        _print_lines("verification", error.report.lines())
        print(f"edgetam-hf convert: verification failed; nothing was written to {args.output_dir}", file=sys.stderr)
        return 1
    print(
        f"wrote {result.output_dir} for {' and '.join(result.model_classes)}: {result.num_original_keys} original "
        f"keys -> {result.num_saved_tensors} tensors, {result.num_parameters:,} parameters"
    )
    if result.verification is not None:
        _print_lines("verification", result.verification.lines())
    if args.push_to_hub:
        try:
            url = push_to_hub(result.output_dir, args.push_to_hub, private=args.private, revision=args.revision)
        except HubPushError as error:
            print(f"edgetam-hf convert: {error}; the converted folder is at {result.output_dir}", file=sys.stderr)
            return 3
        print(f"pushed {result.output_dir} to {url}")
    return 0


@contextlib.contextmanager
def _quiet_transformers_progress():
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


def _print_lines(title: str, lines: list[str]) -> None:
    print(f"{title}:")
    for line in lines:
        print(f"  {line}")


if __name__ == "__main__":
    sys.exit(main())
