"""The accuracy cost of a smaller input, measured where weights are trained: the bundled tiny models.

    PYTHONPATH=src python scripts/evaluate_input_sizes.py [--model src/edgetam_hf/tiny_model]
        [--video-model src/edgetam_hf/tiny_video_model] [--held-out-scenes 100] [--sizes 192,96]

Each model is loaded at its trained size and at the other `--sizes` (default: the trained size and
half of it) with `from_pretrained(..., image_size=...)`, the processor following; nothing is
retrained. The image model is scored by `scripts/train_tiny_model.py`'s held-out IoU (one click,
best of three, box on rendered scenes it never saw), the video model by
`scripts/evaluate_tiny_video.py`'s J&F on the demo clip (box prompts on frame 0, DAVIS scoring).
Everything is seeded and runs on one CPU thread. docs/performance.md quotes the figures beside
faster-edgetam's for the released checkpoint; rerun this after retraining a tiny model.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))
import evaluate_tiny_video  # noqa: E402  (installs the torchvision shim before edgetam_hf is imported)
import train_tiny_model  # noqa: E402

from edgetam_hf import EdgeTamModel, EdgeTamProcessor  # noqa: E402
from edgetam_hf.modeling_video import EdgeTamVideoModel  # noqa: E402


def image_model_ious(folder: Path, size: int, num_scenes: int) -> dict[str, float]:
    model = EdgeTamModel.from_pretrained(str(folder), image_size=size).eval()
    processor = EdgeTamProcessor().for_image_size(size)
    return train_tiny_model.held_out_ious(model, processor, num_scenes)


def video_model_j_and_f(folder: Path, size: int, scratch: Path) -> dict[str, float]:
    model = EdgeTamVideoModel.from_pretrained(str(folder), image_size=size).eval()
    videos = evaluate_tiny_video.write_sample_clip(scratch / "clips")
    jf, j, f = evaluate_tiny_video.clip_j_and_f(model, scratch / "clips", videos, scratch / "tracks")
    return {"J&F": round(jf, 1), "J": round(j, 1), "F": round(f, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=evaluate_tiny_video.BUNDLED_MODEL, help="the tiny image model's folder")
    parser.add_argument("--video-model", type=Path, default=evaluate_tiny_video.BUNDLED_VIDEO_MODEL, help="the tiny video model's folder")
    parser.add_argument("--held-out-scenes", type=int, default=100, help="held-out scenes for the image model (default 100)")
    parser.add_argument("--sizes", help="comma-separated input sides (default: the trained size and half of it)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    trained = EdgeTamModel.config_class.from_pretrained(str(args.model)).prompt_encoder_config.image_size
    sizes = [int(v) for v in args.sizes.split(",")] if args.sizes else [trained, trained // 2]
    report = {"trained_size": trained, "image_model_held_out_iou": {}, "video_model_clip": {}}
    with torch.no_grad():
        for size in sizes:
            report["image_model_held_out_iou"][size] = image_model_ious(args.model, size, args.held_out_scenes)
            print(f"image model at {size}: held-out IoU {report['image_model_held_out_iou'][size]}", flush=True)
            with tempfile.TemporaryDirectory() as scratch:
                report["video_model_clip"][size] = video_model_j_and_f(args.video_model, size, Path(scratch))
            print(f"video model at {size}: {report['video_model_clip'][size]}", flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
