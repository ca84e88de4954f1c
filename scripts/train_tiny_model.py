"""Train a tiny EdgeTAM like the one bundled with the package, from random weights, on rendered shapes.

    PYTHONPATH=src python scripts/train_tiny_model.py --out out/tiny_model
    PYTHONPATH=src python scripts/train_tiny_model.py --evaluate src/edgetam_hf/tiny_model

The bundled weights come from the first command, as it stands (docs/finetuning.md has the
figures). Copy a run over src/edgetam_hf/tiny_model only when its report is better.

Everything is seeded (scenes, prompts, initial weights) and runs on one CPU thread, so a rerun on
the same machine repeats the run. At the end, and for the random initial weights, it measures the
one-click IoU on held-out scenes (another seed, 1-3 shapes rendered at the demo's 640x480 and
resized by the processor like any photo): one positive click at the object's most interior pixel,
the multimask output with the highest predicted IoU, thresholded at 0 at full image size; beside
it the best of the three outputs and the IoU from the object's bounding box (what the demo gives).
The figures go to `training_report.json` beside the weights.

Choices against a model that ignores its prompt (docs/finetuning.md, "The tiny model"): the
layers start from PyTorch's defaults, not transformers' N(0, 0.02) (`training/initialization.py`);
every training scene holds MIN_TRAINING_OBJECTS to MAX_TRAINING_SHAPES shapes, more than the three
outputs of one click (with fewer, "one shape per output" satisfies the best-of-three loss without
reading the click), and OBJECTS_PER_IMAGE of them are prompted; half of the one-click batches
(`--single-output-clicks`) ask for one mask, where a wrong shape costs; the collator's per-batch
prompt kind trains the single output on boxes; the BatchNorms keep their initial statistics, so
that training normalises as inference does; `--correction-click` adds a click on the errors with
one output (off by default).
"""

import argparse
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

# In a checkout, the tests' shim lets a torchvision that breaks `import transformers` import
# (tests/_torchvision_shim.py); it must run before edgetam_hf is imported.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from environment import install_torchvision_shim  # noqa: E402

install_torchvision_shim()
from edgetam_hf import EdgeTamConfig, EdgeTamModel  # noqa: E402
from edgetam_hf.cli.models import processor_for  # noqa: E402
from edgetam_hf.processing import EdgeTamProcessor  # noqa: E402
from edgetam_hf.training.collator import EdgeTamDataCollator  # noqa: E402
from edgetam_hf.training.corrections import corrected_prediction  # noqa: E402
from edgetam_hf.training.evaluation import prompted_ious  # noqa: E402
from edgetam_hf.training.initialization import freeze_batch_norm_statistics, initialise_for_training_from_scratch  # noqa: E402
from edgetam_hf.training.shapes import render_shapes_scene  # noqa: E402

logger = logging.getLogger("train_tiny_model")
IMAGE_SIZE = 192  # image embedding 12x12, low-resolution masks 48x48
TRAIN_SEED, HELD_OUT_SEED = 0, 1_000_003
HELD_OUT_SCENE_SIZE = (640, 480)  # the sample image's size
MIN_TRAINING_OBJECTS, MAX_TRAINING_SHAPES = 3, 7
OBJECTS_PER_IMAGE, BOX_PROBABILITY = 6, 0.4
PROGRESS_SCENES = 10  # held-out scenes measured every --log-every steps (the final figure uses --held-out-scenes)


def tiny_shapes_config() -> EdgeTamConfig:
    hidden = 64
    return EdgeTamConfig(
        vision_config={"backbone_embed_dims": [24, 48, 96, 192], "backbone_depths": [1, 1, 2, 1], "fpn_hidden_size": hidden},
        prompt_encoder_config={"hidden_size": hidden, "image_size": IMAGE_SIZE},
        mask_decoder_config={"hidden_size": hidden, "mlp_dim": 4 * hidden, "num_attention_heads": 4, "iou_head_hidden_dim": hidden},
    )


def training_scene(rng: np.random.Generator) -> dict:
    """A scene of random aspect ratio, as photos come; the processor squeezes it to the square input."""
    size = (int(rng.integers(192, 321)), int(rng.integers(160, 257)))
    image, masks = render_shapes_scene(rng, size, max_shapes=MAX_TRAINING_SHAPES, min_objects=MIN_TRAINING_OBJECTS)
    return {"image": image, "masks": masks}


def held_out_ious(model: EdgeTamModel, processor: EdgeTamProcessor, num_scenes: int) -> dict[str, float]:
    """Mean IoU over the objects of `num_scenes` held-out scenes: one click (the output the IoU head
    picks), one click (the best of three), box."""
    rng = np.random.default_rng(HELD_OUT_SEED)
    per_prompt = {"one_click": [], "one_click_best_of_three": [], "box": []}
    for _ in range(num_scenes):
        image, masks = render_shapes_scene(rng, HELD_OUT_SCENE_SIZE)
        for name, ious in prompted_ious(model, processor, image, masks)._asdict().items():
            per_prompt[name].extend(ious)
    return {name: round(float(np.mean(ious)), 4) for name, ious in per_prompt.items()}


def learning_rate(step: int, total_steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total_steps - warmup, 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for the weights, config and report")
    parser.add_argument("--evaluate", type=Path, metavar="FOLDER", help="only measure the held-out IoU of a saved model")
    parser.add_argument("--steps", type=int, default=5500)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--held-out-scenes", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--single-output-clicks",
        type=float,
        default=0.5,
        metavar="FRACTION",
        help="share of the one-click batches that ask for one mask instead of three (default 0.5)",
    )
    parser.add_argument("--log-every", type=int, default=500, help="steps between loss and held-out IoU lines")
    parser.add_argument(
        "--correction-click",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also train on the first prompt plus one click on the errors (default: no)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    if args.evaluate is not None:
        model = EdgeTamModel.from_pretrained(str(args.evaluate)).eval()
        ious = held_out_ious(model, processor_for(EdgeTamProcessor, model), args.held_out_scenes)
        logger.info("%s: held-out IoU on %d scenes: %s", args.evaluate, args.held_out_scenes, ious)
        return
    if args.out is None:
        parser.error("--out is required to train")

    torch.manual_seed(TRAIN_SEED)
    model = initialise_for_training_from_scratch(EdgeTamModel(tiny_shapes_config()))
    processor = processor_for(EdgeTamProcessor, model)
    num_parameters = sum(p.numel() for p in model.parameters())
    logger.info("tiny model: %.2fM parameters, %d px input", num_parameters / 1e6, IMAGE_SIZE)
    random_ious = held_out_ious(model.eval(), processor, args.held_out_scenes)
    logger.info("held-out IoU with random weights: %s", random_ious)

    collator = EdgeTamDataCollator(processor, OBJECTS_PER_IMAGE, BOX_PROBABILITY, seed=TRAIN_SEED)
    scene_rng, correction_rng = np.random.default_rng(TRAIN_SEED), np.random.default_rng(TRAIN_SEED + 1)
    output_rng = np.random.default_rng(TRAIN_SEED + 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    freeze_batch_norm_statistics(model.train())
    started, running = time.time(), []
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.learning_rate, warmup=100)
        batch = collator([training_scene(scene_rng) for _ in range(args.batch_size)])
        if batch["multimask_output"] and output_rng.random() < args.single_output_clicks:
            batch["multimask_output"] = False  # one mask for the click: no output can hold another shape
        outputs = model(**batch)
        loss = outputs.loss
        if args.correction_click:
            loss = loss + corrected_prediction(model, batch, outputs, correction_rng).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running.append(loss.item())
        if (step + 1) % args.log_every == 0:
            progress = held_out_ious(model.eval(), processor, PROGRESS_SCENES)
            freeze_batch_norm_statistics(model.train())
            logger.info("step %d/%d loss %.4f (%.0f s) held-out IoU on %d scenes %s", step + 1, args.steps, np.mean(running), time.time() - started, PROGRESS_SCENES, progress)
            running = []
    training_seconds = time.time() - started

    model.eval()
    trained_ious = held_out_ious(model, processor, args.held_out_scenes)
    logger.info("held-out IoU: trained %s, random weights %s", trained_ious, random_ious)
    report = {
        "held_out_one_click_iou": trained_ious["one_click"],
        "held_out_one_click_iou_random_weights": random_ious["one_click"],
        "held_out_iou": trained_ious,
        "held_out_iou_random_weights": random_ious,
        "held_out_scenes": args.held_out_scenes,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "image_size": IMAGE_SIZE,
        "parameters": num_parameters,
        "training_seconds": round(training_seconds),
        "threads": args.threads,
        "correction_click": args.correction_click,
        "single_output_clicks": args.single_output_clicks,
        "batch_norm": "statistics frozen at their initial values (mean 0, variance 1)",
        "training_scenes": f"{MIN_TRAINING_OBJECTS}-{MAX_TRAINING_SHAPES} shapes, {OBJECTS_PER_IMAGE} prompted objects per image",
    }
    save_folder(model, processor, report, args.out)


def save_folder(model: EdgeTamModel, processor: EdgeTamProcessor, report: dict, out: Path) -> None:
    """Weights, config, processor config and report, written beside `out` and renamed into place."""
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    processor.save_pretrained(staging)
    for code_copy in staging.glob("*.py"):  # for trust_remote_code; package data needs no copy of the package
        code_copy.unlink()
    (staging / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


if __name__ == "__main__":
    main()
