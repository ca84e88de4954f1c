"""`python -m benchmarks.ondevice_accuracy`: what a build of the tracker (ONNX float32 / float16 /
int8, ExecuTorch) costs in accuracy. Accuracy does not depend on the machine's load; timings are
`benchmarks/ondevice.py`'s.

    python -m benchmarks.ondevice_accuracy --image-export DIR [DIR ...] [--video-export DIR [DIR ...]]
        [--scenes 100]

- `--image-export`: exports of the bundled trained tiny image model (src/edgetam_hf/tiny_model).
  Mask IoU with the ground truth on its 100 held-out scenes (the training report's protocol:
  `edgetam_hf.training.evaluation`: one click at the most interior pixel, the output the IoU head
  picks; the tight box, one output), and the mean IoU of each build's masks with the first
  folder's (give the float32 export first: it is the PyTorch float32 model to 1e-4).
- `--video-export`: exports of the bundled trained tiny video model (src/edgetam_hf/tiny_video_model).
  J&F (DAVIS conventions, `edgetam_hf.evaluation`) on the held-out sample clip (16 frames, 3
  objects, each prompted by its box on frame 0, as scripts/evaluate_tiny_video.py does), float32
  memories, and the mean IoU of the tracked masks with the first folder's.

The logits error on the released size (the fixture checkpoint's random weights) is what
`edgetam-hf export` prints (`edgetam_hf.onnx.accuracy`) against the PyTorch float32 model.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

from .environment import install_torchvision_shim

# The held-out scenes of scripts/train_tiny_model.py (its HELD_OUT_SEED and scene size).
HELD_OUT_SEED = 1_000_003
HELD_OUT_SCENE_SIZE = (640, 480)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-export", nargs="*", default=[], help="exports of the tiny image model, float32 first")
    parser.add_argument("--video-export", nargs="*", default=[], help="exports of the tiny video model, float32 first")
    parser.add_argument("--scenes", type=int, default=100, help="held-out scenes (default 100, the training report's)")
    args = parser.parse_args(argv)
    install_torchvision_shim()
    if args.image_export:
        print("| build | one-click IoU | box IoU | IoU with the first build's masks |")
        print("|---|---|---|---|")
        reference = None
        for folder in args.image_export:
            result = image_ious(folder, args.scenes, reference)
            reference = reference or result["masks"]
            print(f"| {folder} | {result['one_click']:.4f} | {result['box']:.4f} | {result['agreement']:.4f} |", flush=True)
    if args.video_export:
        print("\n| build | J&F | J | F | IoU with the first build's masks |")
        print("|---|---|---|---|---|")
        reference = None
        for folder in args.video_export:
            result = clip_j_and_f(folder, reference)
            reference = reference or result["masks"]
            print(
                f"| {folder} | {result['jf']:.2f} | {result['j']:.2f} | {result['f']:.2f} | {result['agreement']:.4f} |", flush=True
            )
    return 0


def predictor_for(folder):
    """The image predictor of an export folder (ONNX or ExecuTorch)."""
    from edgetam_hf.onnx import OnnxImagePredictor

    return OnnxImagePredictor(folder)


def tracker_for(folder, frames):
    from edgetam_hf.onnx import OnnxVideoTracker

    return OnnxVideoTracker(folder, frames, memory_dtype="float32")


def image_ious(folder, num_scenes: int, reference_masks: list | None = None) -> dict:
    """Mean IoU with the truth of one click and of a box per object over the held-out scenes; the
    masks (to compare builds) and their mean IoU with `reference_masks` (1.0 without)."""
    from edgetam_hf.training.evaluation import interior_click
    from edgetam_hf.training.shapes import render_shapes_scene

    predictor = predictor_for(folder)
    rng = np.random.default_rng(HELD_OUT_SEED)
    click_ious, box_ious, masks_out = [], [], []
    for _ in range(num_scenes):
        image, masks = render_shapes_scene(rng, HELD_OUT_SCENE_SIZE)
        encoded = predictor.encode_image(image)
        clicks = [[list(interior_click(mask))] for mask in masks]
        clicked = predictor.predict(encoded, input_points=clicks)
        chosen = clicked.masks[np.arange(len(masks)), clicked.iou_scores.argmax(-1)]
        boxes = [[float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())] for ys, xs in map(np.nonzero, masks)]
        boxed = predictor.predict(encoded, input_boxes=boxes, multimask_output=False).masks[:, 0]
        click_ious.extend(map(mask_iou, chosen, masks))
        box_ious.extend(map(mask_iou, boxed, masks))
        masks_out.extend([*chosen, *boxed])
    return {
        "one_click": float(np.mean(click_ious)),
        "box": float(np.mean(box_ious)),
        "masks": masks_out,
        "agreement": agreement(masks_out, reference_masks),
    }


def clip_j_and_f(folder, reference_masks: list | None = None) -> dict:
    """J&F (percent) of the tracker of `folder` on the sample clip, every object prompted by its box on frame 0."""
    import torch

    from edgetam_hf.cli.annotate import lowest_id_on_top
    from edgetam_hf.cli.media import save_label_png
    from edgetam_hf.evaluation import evaluate_video
    from edgetam_hf.sample_media import SAMPLE_CLIP_FRAMES, render_sample_clip, render_sample_frame_masks

    frames = render_sample_clip(SAMPLE_CLIP_FRAMES)
    tracker = tracker_for(folder, frames)
    first = render_sample_frame_masks(0)
    obj_ids = list(range(1, len(first) + 1))
    for obj_id, mask in zip(obj_ids, first, strict=True):
        ys, xs = np.nonzero(mask)
        tracker.add_prompt(0, obj_id, box=[float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())])
    masks_out = []
    with tempfile.TemporaryDirectory() as scratch:
        truth_dir, predicted_dir = Path(scratch) / "truth" / "sample", Path(scratch) / "predicted" / "sample"
        truth_dir.mkdir(parents=True)
        predicted_dir.mkdir(parents=True)
        for frame_idx, frame in enumerate(tracker.propagate()):
            masks = tracker.masks(frame)  # (objects, height, width), rows in obj_ids order
            masks_out.extend(masks)
            save_label_png(lowest_id_on_top(torch.from_numpy(masks), obj_ids), predicted_dir / f"{frame_idx:05d}.png")
            truth = torch.from_numpy(render_sample_frame_masks(frame_idx))
            save_label_png(lowest_id_on_top(truth, obj_ids), truth_dir / f"{frame_idx:05d}.png")
        scores = evaluate_video(truth_dir, predicted_dir)
    j, f = float(np.mean([s.j for s in scores])), float(np.mean([s.f for s in scores]))
    return {"jf": (j + f) / 2, "j": j, "f": f, "masks": masks_out, "agreement": agreement(masks_out, reference_masks)}


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two bool masks; two empty masks agree fully."""
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else 1.0


def agreement(masks: list, reference: list | None) -> float:
    if reference is None:
        return 1.0
    return float(np.mean([mask_iou(a, b) for a, b in zip(masks, reference, strict=True)]))


if __name__ == "__main__":
    raise SystemExit(main())
