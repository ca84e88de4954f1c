"""Train the tiny EdgeTAM video model to track rendered shapes, with transformers' `Trainer`.

    PYTHONPATH=src python scripts/train_tiny_video.py --out out/tiny_video_run
    PYTHONPATH=src python scripts/train_tiny_video.py --out out/tiny_video_run --resume
    PYTHONPATH=src python scripts/evaluate_tiny_video.py --video-model out/tiny_video_run/best

The video model starts as `scripts/evaluate_tiny_video.py` builds it: the tiny video configuration,
the bundled image model's trained weights, seeded random memory parts. The memory parts (memory
encoder, spatial perceiver, memory attention, object-pointer projection, temporal encodings) learn
at --learning-rate; the prompt encoder and mask decoder at --decoder-learning-rate (0 keeps them
the image model's: a decoder trained on prompted images only has never segmented a frame from
memory with no prompt); the trunk (`IMAGE_TRUNK_PARTS`) stays the image model's and runs in
inference mode, BatchNorm statistics and all.

Each step is one rendered clip (`training.shapes.render_shapes_clip`: 2-5 shapes that move, turn,
cross and bounce off walls outside the image; numpy seed (--seed, step), at a random aspect ratio
squeezed to the model's square like any video), every object prompted on frame 0 by a noisy box
or one click, and the loss is `training.video_clip.clip_loss` (focal x20 + Dice per frame, object
score BCE for occlusion) averaged over frames. Curriculum: `CURRICULUM` (short, slow clips first).
Trainer gives AdamW with a linear warm-up and cosine decay, gradient clipping, the progress bar
(a line every --print-seconds instead when stderr is not a terminal), seeded data order, and
OUT/checkpoint-N every --eval-steps (model, optimiser, scheduler, random states) for --resume.

Every --eval-steps the model tracks the held-out clips (`evaluate_tiny_video.write_held_out_clips`,
seeds fixed before training) from their frame-0 boxes and scores them as DAVIS 2017 does; the
curve, with the random-memory figure (step 0) and the per-frame ground-truth-box ceiling, goes to
OUT/training_report.json and the best model so far to OUT/best (weights, config, processor
config, report).
"""

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_tiny_video import (  # noqa: E402  (installs the torchvision shim)
    BUNDLED_MODEL,
    CLIP_MOTION,
    HELD_OUT_CLIPS,
    HELD_OUT_FRAMES,
    HELD_OUT_SEED,
    HELD_OUT_SIZE,
    IMAGE_TRUNK_PARTS,
    clip_j_and_f,
    per_frame_box_j_and_f,
    video_model_from_image_model,
    write_held_out_clips,
)
from transformers import Trainer, TrainerCallback, TrainingArguments, get_cosine_schedule_with_warmup  # noqa: E402
from transformers.trainer_callback import PrinterCallback  # noqa: E402

from edgetam_hf import EdgeTamModel  # noqa: E402
from edgetam_hf.cli.models import processor_for, quiet_transformers  # noqa: E402
from edgetam_hf.modeling_video import EdgeTamVideoModel  # noqa: E402
from edgetam_hf.training.prompts import sample_box_prompt, sample_click_prompt  # noqa: E402
from edgetam_hf.training.shapes import render_shapes_clip  # noqa: E402
from edgetam_hf.training.video_clip import clip_loss  # noqa: E402
from edgetam_hf.video_processing import EdgeTamVideoProcessor  # noqa: E402

logger = logging.getLogger("train_tiny_video")
TRAIN_SEED = 3_000_017  # clips; the image model trained on seed 0, its held-out scenes use 1_000_003
DECODER_PARTS = ("prompt_encoder", "mask_decoder")
BOX_PROBABILITY = 0.7  # the evaluation prompts by boxes; clicks keep the memory from relying on them
# (fraction of the steps from which a stage holds, frames per clip, share of CLIP_MOTION's speed and turn)
CURRICULUM = ((0.0, 4, 0.5), (0.2, 8, 1.0))
TRAINING_WIDTHS, TRAINING_HEIGHTS = (192, 320), (144, 256)  # rendered size range, squeezed to the square
WARMUP_STEPS = 100
MAX_GRADIENT_NORM = 1.0


class RenderedClips(torch.utils.data.Dataset):
    """Clip `index` (the step, read in order) as `clip_loss`'s arguments, rendered from numpy seed
    (seed, index) with the curriculum stage of that step: a resumed run sees the same clips."""

    def __init__(self, processor: EdgeTamVideoProcessor, num_clips: int, seed: int):
        self.processor, self.num_clips, self.seed = processor, num_clips, seed

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        num_frames, motion = curriculum_stage(index, self.num_clips)
        size = (int(rng.integers(*TRAINING_WIDTHS)), int(rng.integers(*TRAINING_HEIGHTS)))
        frames, masks = render_shapes_clip(rng, size, num_frames, **motion)
        side = self.processor.target_size
        labels = F.interpolate(torch.from_numpy(masks).float(), size=(side, side), mode="bilinear", align_corners=False) > 0.5
        sample_prompt = sample_box_prompt if rng.random() < BOX_PROBABILITY else sample_click_prompt
        points, point_labels = zip(*(sample_prompt(mask, rng) for mask in labels[0].numpy()))
        return {
            "pixel_values": self.processor.preprocess_frames(frames)["pixel_values"],  # (num_frames, 3, side, side)
            "labels": labels.float(),  # (num_frames, num_objects, side, side)
            "input_points": torch.tensor(points, dtype=torch.float32),  # (num_objects, 1 or 2, 2)
            "input_labels": torch.tensor(point_labels, dtype=torch.long),
        }


def curriculum_stage(step: int, total_steps: int) -> tuple[int, dict]:
    """(frames per clip, `render_shapes_clip` motion arguments) of `step`."""
    _, num_frames, share = [stage for stage in CURRICULUM if step >= stage[0] * total_steps][-1]
    motion = {**CLIP_MOTION, "max_speed": CLIP_MOTION["max_speed"] * share, "max_turn": CLIP_MOTION["max_turn"] * share}
    return num_frames, motion


def one_clip(items: list[dict]) -> dict:
    """The collator: a step is one clip (its objects are the batch)."""
    if len(items) != 1:
        raise ValueError(f"per_device_train_batch_size must be 1 (one clip per step), got {len(items)} clips")
    return items[0]


class ClipTrainer(Trainer):
    """`Trainer` whose loss is `clip_loss` averaged over the clip's frames, plus from step
    `image_loss_from` the image model's loss on the prompted frame (`image_view`: SAM 2's
    best-of-three and IoU terms, which `clip_loss` lacks: without them a one-click answer drifts to
    an output the untrained IoU head does not pick). The trunk stays in inference mode (Trainer puts
    the whole model in training mode every step)."""

    def __init__(self, *args, image_view: EdgeTamModel, image_loss_from: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.image_view, self.image_loss_from = image_view, image_loss_from

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        for name in IMAGE_TRUNK_PARTS:
            part = getattr(model, name)
            if isinstance(part, torch.nn.Module):
                part.eval()  # its BatchNorms normalise with the statistics the image model trained with
        loss = clip_loss(model, **inputs)
        mean = loss.total / inputs["pixel_values"].shape[0]
        if self.state.global_step >= self.image_loss_from:
            prompted_frame = self.image_view(
                pixel_values=inputs["pixel_values"][:1],
                input_points=inputs["input_points"][None],
                input_labels=inputs["input_labels"][None],
                labels=inputs["labels"][:1],
                multimask_output=inputs["input_points"].shape[1] == 1,  # one click: three outputs, as SAM 2 trains
            )
            mean = mean + prompted_frame.loss
        return (mean, loss) if return_outputs else mean


def image_view_of(model: EdgeTamVideoModel, image_config) -> EdgeTamModel:
    """An `EdgeTamModel` made of `model`'s own image modules (the same parameters), whose forward
    with `labels` gives the package's image loss."""
    view = EdgeTamModel(image_config)
    for name in IMAGE_TRUNK_PARTS + DECODER_PARTS:
        setattr(view, name, getattr(model, name))
    return view


def trainable_groups(model: EdgeTamVideoModel, learning_rate: float, decoder_learning_rate: float) -> list[dict]:
    """AdamW parameter groups: memory parts, then prompt encoder and mask decoder (left out at 0);
    the trunk gets no gradients."""
    frozen = IMAGE_TRUNK_PARTS + (DECODER_PARTS if decoder_learning_rate == 0 else ())
    for name in frozen:
        getattr(model, name).requires_grad_(False)
    decoder = [p for name in DECODER_PARTS for p in getattr(model, name).parameters() if p.requires_grad]
    decoder_ids = {id(p) for p in decoder}
    memory = [p for p in model.parameters() if p.requires_grad and id(p) not in decoder_ids]
    groups = [{"params": memory, "lr": learning_rate}]
    return groups + ([{"params": decoder, "lr": decoder_learning_rate}] if decoder else [])


class HeldOutCurve(TrainerCallback):
    """Every `eval_steps` (and at the end): held-out J&F, the curve into the report, the best model
    into OUT/best."""

    def __init__(self, out: Path, clips: Path, videos: list[str], report: dict):
        self.out, self.clips, self.videos, self.report = out, clips, videos, report

    def measure(self, model: EdgeTamVideoModel, step: int) -> float:
        started, was_training = time.monotonic(), model.training
        model.eval()
        with tempfile.TemporaryDirectory() as scratch:
            jf, j, f = clip_j_and_f(model, self.clips, self.videos, Path(scratch) / "tracks")
        model.train(was_training)
        curve = [point for point in self.report["curve"] if point["step"] < step]
        self.report["curve"] = curve + [{"step": step, "j_and_f": round(jf, 2), "j": round(j, 2), "f": round(f, 2)}]
        logger.info("step %d: held-out J&F %.1f (J %.1f, F %.1f), %.0f s to measure", step, jf, j, f, time.monotonic() - started)
        best = max(self.report["curve"], key=lambda point: point["j_and_f"])
        self.report["best"] = best
        if best["step"] == step:
            save_model_folder(model, self.out / "best", self.report)
        (self.out / "training_report.json").write_text(json.dumps(self.report, indent=2) + "\n")
        return jf

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % args.save_steps == 0 or state.global_step == state.max_steps:
            self.report["training_seconds"] = self.report.get("training_seconds_before", 0) + round(time.monotonic() - self.started)
            self.report["steps"] = state.global_step
            self.measure(model, state.global_step)

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()
        self.report["training_seconds_before"] = self.report.get("training_seconds", 0)


class PrintedProgress(TrainerCallback):
    """A line with the step, the loss and the recent pace every `seconds`, for logs that are not a terminal."""

    def __init__(self, seconds: float):
        self.seconds, self.losses = seconds, []

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_time, self.last_step = time.monotonic(), state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(logs["loss"])
        now = time.monotonic()
        if now - self.last_time >= self.seconds and self.losses and state.global_step > self.last_step:
            pace = (now - self.last_time) / (state.global_step - self.last_step)
            logger.info(
                "step %d/%d  loss %.4f  %.2f s/step  %.0f min left",
                state.global_step, state.max_steps, np.mean(self.losses), pace, pace * (state.max_steps - state.global_step) / 60,
            )
            self.last_time, self.last_step, self.losses = now, state.global_step, []


def save_model_folder(model: EdgeTamVideoModel, folder: Path, report: dict) -> None:
    """Weights, config, processor config (its own input size) and report, renamed into place."""
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with quiet_transformers():
        model.save_pretrained(staging)
    processor_for(EdgeTamVideoProcessor, model).save_pretrained(staging)
    for code_copy in staging.glob("*.py"):  # for trust_remote_code; package data needs no copy of the package
        code_copy.unlink()
    (staging / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL, help="a folder of the tiny image model")
    parser.add_argument("--out", type=Path, required=True, help="folder for checkpoints, OUT/best and the report")
    parser.add_argument("--steps", type=int, default=4000, help="optimiser steps (one clip each)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="peak learning rate of the memory parts")
    parser.add_argument(
        "--decoder-learning-rate", type=float, default=3e-4, help="peak learning rate of the prompt encoder and mask decoder (0: frozen)"
    )
    parser.add_argument("--eval-steps", type=int, default=250, help="steps between held-out J&F and checkpoints")
    parser.add_argument("--seed", type=int, default=TRAIN_SEED, help="seed of the training clips and of dropout")
    parser.add_argument("--print-seconds", type=float, default=15.0, help="seconds between progress lines off a terminal")
    parser.add_argument(
        "--image-loss-from", type=int, default=0, metavar="STEP", help="add the image loss on the prompted frame from this step on"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the last OUT/checkpoint-N")
    args = parser.parse_args()
    for name in ("steps", "eval_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.resume and not any(args.out.glob("checkpoint-*")):
        parser.error(f"--resume: no checkpoint-N folder in {args.out}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    image_model = EdgeTamModel.from_pretrained(str(args.model)).eval()
    model = video_model_from_image_model(image_model, random_image_parts=False)
    processor = processor_for(EdgeTamVideoProcessor, model)
    args.out.mkdir(parents=True, exist_ok=True)
    report_path = args.out / "training_report.json"
    report = json.loads(report_path.read_text()) if args.resume and report_path.exists() else {"curve": []}
    report.update(
        command="PYTHONPATH=src python scripts/train_tiny_video.py " + " ".join(sys.argv[1:]),
        steps_planned=args.steps,
        learning_rate=args.learning_rate,
        decoder_learning_rate=args.decoder_learning_rate,
        image_loss_from_step=args.image_loss_from,
        schedule=f"linear warm-up {WARMUP_STEPS} steps, cosine to 0 at steps_planned, AdamW weight decay 0.01",
        gradient_clipping=MAX_GRADIENT_NORM,
        seed=args.seed,
        held_out=f"{HELD_OUT_CLIPS} clips of {HELD_OUT_FRAMES} frames at {HELD_OUT_SIZE[0]}x{HELD_OUT_SIZE[1]}, numpy seeds ({HELD_OUT_SEED}, 0..{HELD_OUT_CLIPS - 1}), {CLIP_MOTION}; prompted by frame-0 boxes",
        curriculum=[{"from_step": round(start * args.steps), "frames": frames, "motion_share": share} for start, frames, share in CURRICULUM],
        clips=f"numpy seed ({args.seed}, step), {CLIP_MOTION}, box with p={BOX_PROBABILITY} else one click",
        frozen=list(IMAGE_TRUNK_PARTS) + (list(DECODER_PARTS) if args.decoder_learning_rate == 0 else []),
        image_size=model.config.image_size,
        threads=1,
        image_model="src/edgetam_hf/tiny_model" if args.model == BUNDLED_MODEL else str(args.model),
    )
    with tempfile.TemporaryDirectory() as scratch:
        clips = Path(scratch) / "held_out"
        videos = write_held_out_clips(clips)
        curve = HeldOutCurve(args.out, clips, videos, report)
        if "per_frame_box_ceiling" not in report:
            with torch.no_grad():
                report["per_frame_box_ceiling"] = round(per_frame_box_j_and_f(image_model, clips, videos, Path(scratch) / "boxes")[0], 2)
            report["random_memory_j_and_f"] = round(curve.measure(model, 0), 2)
        groups = trainable_groups(model, args.learning_rate, args.decoder_learning_rate)
        report["trained_parameters"] = sum(p.numel() for group in groups for p in group["params"])
        optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
        scheduler = get_cosine_schedule_with_warmup(optimizer, WARMUP_STEPS, args.steps)
        on_terminal = sys.stderr.isatty()
        training_args = TrainingArguments(
            output_dir=str(args.out),
            max_steps=args.steps,
            per_device_train_batch_size=1,
            max_grad_norm=MAX_GRADIENT_NORM,
            save_steps=args.eval_steps,
            save_total_limit=2,
            logging_steps=5,
            seed=args.seed,
            train_sampling_strategy="sequential",  # clip i is step i: the curriculum follows the steps
            use_cpu=True,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            disable_tqdm=not on_terminal,
            report_to=[],
        )
        trainer = ClipTrainer(
            model=model,
            args=training_args,
            train_dataset=RenderedClips(processor, args.steps, args.seed),
            data_collator=one_clip,
            optimizers=(optimizer, scheduler),
            image_view=image_view_of(model, image_model.config),
            image_loss_from=args.image_loss_from,
            callbacks=[curve] + ([] if on_terminal else [PrintedProgress(args.print_seconds)]),
        )
        trainer.remove_callback(PrinterCallback)  # PrintedProgress prints the loss off a terminal
        trainer.train(resume_from_checkpoint=True if args.resume else None)
    logger.info("best held-out J&F %s; model in %s", report["best"], args.out / "best")


if __name__ == "__main__":
    main()
