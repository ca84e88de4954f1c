"""The `edgetam-hf` command line (also `python -m edgetam_hf`)."""

import argparse
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
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
