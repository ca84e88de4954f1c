"""Train the memory parts of a tiny EdgeTAM video model on rendered clips, its image parts frozen.

    PYTHONPATH=src python scripts/train_tiny_video.py --out out/tiny_video_model
    PYTHONPATH=src python scripts/evaluate_tiny_video.py --video-model out/tiny_video_model

The video model is the one `scripts/evaluate_tiny_video.py` builds (the tiny video configuration,
the bundled image model's trained vision encoder, prompt encoder and mask decoder, seeded random
memory parts). Only the memory parts learn: memory encoder, spatial perceiver, memory attention,
object-pointer projection, temporal encodings, the no-object pointer and embeddings of the
memory path; every weight taken from the image model (`IMAGE_PARTS`) stays as it is and runs in
inference mode (BatchNorm statistics and all), so the prompted frame is segmented as the image
model segments it.

Each step renders a clip of moving shapes (`training.shapes.render_shapes_clip`, at the model's
input size, seeds far from any evaluation), prompts every object on frame 0 by a noisy box or one
click, and takes one AdamW step on `training.video_clip.clip_loss` (per-frame focal + Dice, object
score BCE for occlusion; gradients through the memory path). The learning rate warms up, then
follows a cosine down to zero over `--steps`; `--minutes` stops earlier if the time runs out.
Seeded, one CPU thread. Writes the whole video model (`save_pretrained`: config.json and
model.safetensors) and `training_report.json` to `--out`.
"""

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_tiny_video import BUNDLED_MODEL, video_model_from_image_model  # noqa: E402  (installs the torchvision shim)

from edgetam_hf import EdgeTamModel  # noqa: E402
from edgetam_hf.modeling_video import EdgeTamVideoModel  # noqa: E402
from edgetam_hf.training.prompts import sample_box_prompt, sample_click_prompt  # noqa: E402
from edgetam_hf.training.shapes import render_shapes_clip  # noqa: E402
from edgetam_hf.training.video_clip import clip_loss  # noqa: E402
from edgetam_hf.video_processing import EdgeTamVideoProcessor  # noqa: E402

logger = logging.getLogger("train_tiny_video")
# Everything the video model takes from the image model (`no_memory_embedding` marks a frame read
# without memory, every image; the Fourier matrix is a buffer): these stay as the image model has them.
IMAGE_PARTS = ("vision_encoder", "prompt_encoder", "mask_decoder", "shared_image_embedding", "no_memory_embedding")
TRAIN_SEED = 3_000_017  # clips; the image model trained on seed 0, its held-out scenes use 1_000_003
MAX_SHAPES, MIN_OBJECTS = 5, 2
BOX_PROBABILITY = 0.7  # the evaluation prompts by boxes; clicks keep the memory from relying on them
WARMUP_STEPS = 50
MAX_GRADIENT_NORM = 1.0


def freeze_image_parts(video_model: EdgeTamVideoModel) -> list[torch.nn.Parameter]:
    """Puts the memory parts in training mode and the image parts in inference mode without
    gradients; returns the memory parameters (the ones to train)."""
    video_model.train()
    for name in IMAGE_PARTS:
        part = getattr(video_model, name)
        if isinstance(part, torch.nn.Module):
            part.eval()
        part.requires_grad_(False)
    return [parameter for parameter in video_model.parameters() if parameter.requires_grad]


def training_clip(rng: np.random.Generator, processor: EdgeTamVideoProcessor, num_frames: int) -> dict[str, torch.Tensor]:
    """`clip_loss`'s inputs for one rendered clip: every object prompted on frame 0, all by a box
    or all by one click (one prompt kind per clip keeps the points rectangular)."""
    side = processor.target_size
    frames, masks = render_shapes_clip(rng, (side, side), num_frames, max_shapes=MAX_SHAPES, min_objects=MIN_OBJECTS)
    sample_prompt = sample_box_prompt if rng.random() < BOX_PROBABILITY else sample_click_prompt
    points, labels = zip(*(sample_prompt(object_mask, rng) for object_mask in masks[0]))
    return {
        "pixel_values": processor.preprocess_frames(frames)["pixel_values"],  # (num_frames, 3, side, side)
        "labels": torch.from_numpy(masks).float(),  # (num_frames, num_objects, side, side)
        "input_points": torch.tensor(points, dtype=torch.float32),  # (num_objects, 1 or 2, 2)
        "input_labels": torch.tensor(labels, dtype=torch.long),
    }


def learning_rate_factor(step: int, total_steps: int) -> float:
    """Linear warm-up over WARMUP_STEPS, then a cosine from 1 to 0 at `total_steps`."""
    if step < WARMUP_STEPS:
        return (step + 1) / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / max(1, total_steps - WARMUP_STEPS)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(video_model: EdgeTamVideoModel, args: argparse.Namespace) -> dict:
    """Trains the memory parts in place; returns the run's figures for the report."""
    trained = freeze_image_parts(video_model)
    optimizer = torch.optim.AdamW(trained, lr=args.learning_rate, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, args.steps))
    processor = EdgeTamVideoProcessor(target_size=video_model.config.image_size)
    rng = np.random.default_rng(args.seed)
    losses = []
    start = time.monotonic()
    step = 0
    while step < args.steps and time.monotonic() - start < args.minutes * 60:
        loss = clip_loss(video_model, **training_clip(rng, processor, args.frames))
        optimizer.zero_grad()
        loss.total.backward()
        torch.nn.utils.clip_grad_norm_(trained, MAX_GRADIENT_NORM)
        optimizer.step()
        scheduler.step()
        losses.append(loss.total.item())
        step += 1
        if step % args.log_every == 0 or step == args.steps:
            logger.info(
                "step %d  loss %.3f (mean of the last %d)  %.2f steps/s",
                step, np.mean(losses[-args.log_every :]), args.log_every, step / (time.monotonic() - start),
            )
    video_model.eval()
    window = min(len(losses), args.log_every)
    return {
        "steps": step,
        "steps_planned": args.steps,
        "training_seconds": round(time.monotonic() - start),
        "loss_first_steps": round(float(np.mean(losses[:window])), 4),
        "loss_last_steps": round(float(np.mean(losses[-window:])), 4),
        "loss_window": window,
        "trained_parameters": sum(parameter.numel() for parameter in trained),
    }


def _shown_path(path: Path) -> str:
    """`path` relative to the checkout when it lies inside it (the report is shipped with the weights)."""
    checkout = Path(__file__).resolve().parents[1]
    resolved = path.resolve()
    return str(resolved.relative_to(checkout)) if resolved.is_relative_to(checkout) else str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL, help="a folder of the tiny image model")
    parser.add_argument("--out", type=Path, required=True, help="folder for the video model and its report")
    parser.add_argument("--steps", type=int, default=3000, help="steps of the learning-rate schedule")
    parser.add_argument("--minutes", type=float, default=20.0, help="stop after this much training time")
    parser.add_argument("--frames", type=int, default=8, help="frames per training clip")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=TRAIN_SEED, help="seed of the training clips")
    parser.add_argument("--log-every", type=int, default=50)
    args = parser.parse_args()
    for name in ("steps", "frames", "log_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)  # dropout in the memory attention
    image_model = EdgeTamModel.from_pretrained(str(args.model))
    video_model = video_model_from_image_model(image_model, random_image_parts=False)
    figures = train(video_model, args)
    args.out.mkdir(parents=True, exist_ok=True)
    video_model.save_pretrained(str(args.out))
    report = {
        **figures,
        "frames_per_clip": args.frames,
        "learning_rate": args.learning_rate,
        "schedule": f"linear warm-up {WARMUP_STEPS} steps, cosine to 0 at steps_planned",
        "gradient_clipping": MAX_GRADIENT_NORM,
        "seed": args.seed,
        "threads": 1,
        "image_size": video_model.config.image_size,
        "clips": f"{MIN_OBJECTS}-{MAX_SHAPES} moving shapes, every object on frame 0 prompted, box with p={BOX_PROBABILITY} else one click",
        "frozen": list(IMAGE_PARTS),
        "image_model": _shown_path(args.model),
    }
    (args.out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    logger.info("wrote %s: %s", args.out, json.dumps(figures))


if __name__ == "__main__":
    main()
