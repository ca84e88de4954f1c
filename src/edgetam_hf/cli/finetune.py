"""`edgetam-hf finetune`: adapt the image model to a folder of images and masks with transformers'
`Trainer` (progress bar, checkpoints every --save-steps, --resume); see docs/finetuning.md."""

import json
from pathlib import Path

from .models import FOUND_MODEL_HELP, device_from, load_model, model_source, processor_for, quiet_transformers

FINAL_FOLDER = "final"


def add_arguments(finetune) -> None:
    finetune.description = (
        "Fine-tune EdgeTAM's image model with the SAM 2 task loss (focal x20, dice, IoU prediction, "
        "object score) on prompts sampled from the masks: a noisy box or one click per object. Data: "
        "DATA/images/NAME.jpg with DATA/masks/NAME.png (--layout images) or a DAVIS folder (--layout davis); "
        "masks are instance-id PNGs (0 background). Checkpoints go to OUT/checkpoint-N, the model to OUT/final."
    )
    finetune.add_argument("data", help="the dataset folder")
    finetune.add_argument("--layout", choices=("images", "davis"), default="images", help="folder layout (default images)")
    finetune.add_argument("--model", help=f"the model to start from (default: {FOUND_MODEL_HELP})")
    finetune.add_argument("--out", default="out/finetune", help="output folder (default out/finetune)")
    finetune.add_argument("--steps", type=int, default=1000, help="optimiser steps (default 1000)")
    finetune.add_argument("--batch-size", type=int, default=4, help="images per step and device (default 4)")
    finetune.add_argument("--objects-per-image", type=int, default=2, help="objects prompted per image (default 2)")
    finetune.add_argument("--learning-rate", type=float, default=1e-5, help="AdamW peak learning rate (default 1e-5)")
    finetune.add_argument("--save-steps", type=int, default=500, help="checkpoint every N steps (default 500)")
    finetune.add_argument("--seed", type=int, default=0, help="seed of weights-independent randomness (default 0)")
    finetune.add_argument(
        "--freeze-image-encoder", action="store_true", help="train the prompt encoder and mask decoder only"
    )
    finetune.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    finetune.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda when available)")
    finetune.set_defaults(run=run_finetune)


def run_finetune(args) -> int:
    from transformers import Trainer, TrainingArguments, set_seed

    from ..modeling import EdgeTamModel
    from ..processing import EdgeTamProcessor
    from ..training.collator import EdgeTamDataCollator
    from ..training.datasets import DavisFolderDataset, ImageMaskFolderDataset

    for name in ("steps", "batch_size", "objects_per_image", "save_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    args.model = model_source(args.model)
    out_dir = Path(args.out)
    if args.resume:
        _check_steps_left(out_dir, args.steps)
    set_seed(args.seed)
    dataset = (DavisFolderDataset if args.layout == "davis" else ImageMaskFolderDataset)(args.data)
    device = device_from(args.device)
    model = load_model(EdgeTamModel, args.model, device)
    if args.freeze_image_encoder:
        model.vision_encoder.requires_grad_(False)
    processor = processor_for(EdgeTamProcessor, model)
    collator = EdgeTamDataCollator(processor, objects_per_image=args.objects_per_image, seed=args.seed)
    training_args = TrainingArguments(
        output_dir=str(out_dir),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=0.01,
        warmup_steps=min(100, args.steps // 10),
        max_grad_norm=1.0,
        save_steps=args.save_steps,
        logging_steps=max(1, min(50, args.steps // 10)),
        seed=args.seed,
        use_cpu=device.type == "cpu",
        remove_unused_columns=False,  # the collator reads "image" and "masks", which forward does not take
        dataloader_num_workers=0,
        report_to=[],
    )
    callbacks = [_schedule_of_this_run()] if args.resume else None
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator, callbacks=callbacks)
    print(f"fine-tuning {args.model} on {len(dataset)} images of {args.data} for {args.steps} steps")
    trainer.train(resume_from_checkpoint=True if args.resume else None)
    final_dir = out_dir / FINAL_FOLDER
    with quiet_transformers():
        trainer.save_model(str(final_dir))
    processor.save_pretrained(str(final_dir))
    print(f"model written to {final_dir} (load it with --model {final_dir})")
    return 0


def _check_steps_left(out_dir: Path, steps: int) -> None:
    from transformers.trainer_utils import get_last_checkpoint

    checkpoint = get_last_checkpoint(str(out_dir)) if out_dir.is_dir() else None
    if checkpoint is None:
        raise ValueError(f"--resume: no checkpoint-N folder in {out_dir}")
    done = json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"]
    if steps <= done:
        raise ValueError(
            f"--steps {steps}: {Path(checkpoint).name} in {out_dir} has already run {done} steps; "
            f"pass --steps larger than {done} to train further"
        )


def _schedule_of_this_run():
    """A callback: Trainer restores the checkpoint's learning-rate schedule, planned for that run's
    --steps; resumed with a larger --steps, the extra steps would run at its end, learning rate 0.
    The schedule built for this run's --steps takes over at the checkpoint's step instead (the same
    one when --steps is unchanged)."""
    from transformers import TrainerCallback  # here: `finetune --help` imports no transformers

    class ScheduleOfThisRun(TrainerCallback):
        def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
            resumed = lr_scheduler.state_dict()
            resumed["last_epoch"] = state.global_step - 1
            lr_scheduler.load_state_dict(resumed)
            lr_scheduler.step()  # the optimiser's learning rate of step `global_step` by this run's plan

    return ScheduleOfThisRun()
