"""`python -m benchmarks.bfloat16_accuracy`: how far a bfloat16 video model's masks are from
float32 on the fixture clip, and where the difference enters.

The clip: the fixture's 10 frames (480x640), 3 objects with one click each on frame 0, its
checkpoint (random weights). float32 runs once; bfloat16 (`model.to(torch.bfloat16)`, session
dtype bfloat16) runs as it is, then once per `--float32` variant with the named components kept in
float32 (weights and arithmetic; their bfloat16 inputs are upcast and their outputs cast back, as
a float32 island in a bfloat16 model would do). Each row gives the mask IoU at video resolution
over the clip, the worst frame / object, frame 0 alone (the image path: no memory yet), the
tracked frames 1-9 (memory path) and the largest logit difference.

The fixture's random weights give masks whose logits are nearly all within a few bfloat16 steps of
0, where rounding flips pixels. `--trained-clips N` asks the same of trained weights: the bundled
tiny video model (`src/edgetam_hf/tiny_video_model`, trained on moving shapes) on N rendered
clips of moving shapes, every object prompted by its box on frame 0.
"""

import argparse
import dataclasses
import os
from pathlib import Path

import torch

from . import environment

# Component -> (submodule, its methods the model calls, output fields left in float32 because the
# model upcasts them anyway).
COMPONENTS = {
    "trunk": ("vision_encoder.backbone", ("forward",), ()),
    "stem": ("vision_encoder.backbone.timm_model.stem", ("forward",), ()),
    "neck": ("vision_encoder.neck", ("forward", "lowest_kept_level"), ()),
    "prompt_encoder": ("prompt_encoder", ("forward",), ()),
    "mask_decoder": (
        "mask_decoder",
        ("forward", "project_high_resolution_features"),
        ("mask_logits", "object_score_logits", "iou_scores"),
    ),
    "memory_attention": ("memory_attention", ("forward",), ()),
    "memory_encoder": ("memory_encoder", ("forward",), ()),
    "perceiver": ("spatial_perceiver", ("forward",), ()),
    "object_pointer": ("object_pointer_proj", ("forward",), ()),
}
# Not a module: the session stores the memories in float32 instead of bfloat16 (the original,
# and our float32 default, store bfloat16).
MEMORY_BANK = "memory_bank"
CLICKS = [[[[120.0, 300.0]], [[320.0, 200.0]], [[500.0, 260.0]]]]


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bfloat16_accuracy", description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trained-clips", type=int, default=0, help="also the bundled trained tiny model on N clips")
    parser.add_argument(
        "--float32",
        default="",
        help="variants, comma-separated, each one component or several joined by '+': "
        + ", ".join([*COMPONENTS, MEMORY_BANK]),
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    options = parse_arguments(argv)
    variants = [variant.strip() for variant in options.float32.split(",") if variant.strip()]
    for variant in variants:
        unknown = set(variant.split("+")) - {*COMPONENTS, MEMORY_BANK}
        if unknown:
            raise SystemExit(f"--float32: unknown component(s) {sorted(unknown)}; known: {[*COMPONENTS, MEMORY_BANK]}")
    environment.set_threads(options.threads)
    environment.install_torchvision_shim()
    print(f"threads {torch.get_num_threads()}; load average before: {environment.load_average()}", flush=True)
    from edgetam_hf.configuration import EdgeTamVideoConfig
    from edgetam_hf.modeling_video import EdgeTamVideoModel

    model = EdgeTamVideoModel(EdgeTamVideoConfig()).eval()
    print_bfloat16_accuracy(model, variants)
    if options.trained_clips:
        print_trained_tiny_accuracy(options.trained_clips)
    print(f"load average after: {environment.load_average()}")
    return 0


def print_bfloat16_accuracy(model, variants=()) -> None:
    """Loads the fixture checkpoint into `model` and prints one row per variant (see the module
    docstring); the model is left in float32."""
    from edgetam_hf.weights import load_original_state_dict, read_original_checkpoint

    fixtures = Path(os.environ["EDGETAM_FIXTURES"])
    load_original_state_dict(model, read_original_checkpoint(fixtures / "edgetam_random_seed0.pt"))
    frames = str(fixtures / "original_seed0" / "frames")
    reference = track_clip(model.to(torch.float32), frames, torch.float32)
    print(f"float32 masks: {tuple(reference.shape)} (frames, objects, 1, H, W), largest |logit| "
          f"{reference.abs().max().item():.2f}, median |logit| {reference.abs().median().item():.3f}\n")
    print("| bfloat16 with float32 | IoU | worst frame/object | frame 0 | frames 1- | max logit difference |")
    print("|---|---|---|---|---|---|", flush=True)
    for variant in ("", *variants):
        names = variant.split("+") if variant else []
        islands = [COMPONENTS[name] for name in names if name != MEMORY_BANK]
        memory_dtype = torch.float32 if MEMORY_BANK in names else torch.bfloat16
        with _float32_islands(model.to(torch.bfloat16), islands):
            logits = track_clip(model, frames, torch.bfloat16, memory_dtype)
        model.to(torch.float32)
        print(_row(variant or "nothing", reference, logits), flush=True)


def print_trained_tiny_accuracy(num_clips: int) -> None:
    """bfloat16 against float32 masks of the bundled trained tiny video model, one row per clip."""
    import numpy as np

    from edgetam_hf.modeling_video import EdgeTamVideoModel
    from edgetam_hf.training.shapes import render_shapes_clip
    from edgetam_hf.video_processing import EdgeTamVideoProcessor

    import edgetam_hf

    folder = Path(edgetam_hf.__file__).parent / "tiny_video_model"  # in the source tree, not the wheel
    model = EdgeTamVideoModel.from_pretrained(str(folder)).eval()
    processor = EdgeTamVideoProcessor(target_size=model.config.image_size)
    rng = np.random.default_rng(2026)
    print(f"\ntrained tiny video model ({folder.name}), clips of 10 frames at 320x240, boxes on frame 0:\n")
    print("| clip (objects) | IoU | worst frame/object | frame 0 | frames 1- | max logit difference |")
    print("|---|---|---|---|---|---|", flush=True)
    for clip in range(num_clips):
        frames, masks = render_shapes_clip(rng, (320, 240), 10)
        boxes = [_box(mask) for mask in masks[0]]
        reference = _track_with_boxes(model.to(torch.float32), processor, frames, boxes, torch.float32)
        logits = _track_with_boxes(model.to(torch.bfloat16), processor, frames, boxes, torch.bfloat16)
        print(_row(f"{clip} ({len(boxes)})", reference, logits), flush=True)
    model.to(torch.float32)


def _box(mask) -> list[float]:
    import numpy as np

    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def _track_with_boxes(model, processor, frames, boxes, dtype: torch.dtype) -> torch.Tensor:
    """Mask logits at video resolution, (frames, objects, 1, H, W) float32."""
    session = processor.init_video_session(frames, dtype=dtype)
    obj_ids = list(range(1, len(boxes) + 1))
    processor.add_inputs_to_inference_session(session, 0, obj_ids, input_boxes=[boxes])
    with torch.no_grad():
        return _video_resolution_logits(model, processor, session)


def track_clip(model, frames: str, dtype: torch.dtype, memory_dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Mask logits at video resolution, (frames, 3, 1, H, W) float32, of the 3 clicked objects;
    `model` is already cast (a cast here would undo the float32 islands)."""
    from edgetam_hf.video_processing import EdgeTamVideoProcessor

    processor = EdgeTamVideoProcessor()
    session = processor.init_video_session(frames, dtype=dtype, memory_dtype=memory_dtype)
    processor.add_inputs_to_inference_session(session, 0, [1, 2, 3], input_points=CLICKS, input_labels=[[[1]] * 3])
    return _video_resolution_logits(model, processor, session)


def _video_resolution_logits(model, processor, session) -> torch.Tensor:
    """Tracks the session's prompted objects over the clip -> (frames, objects, 1, H, W) float32
    mask logits at video resolution."""
    model(session, frame_idx=0)
    low_res = [output.pred_masks for output in model.propagate_in_video_iterator(session)]
    size = [[session.video_height, session.video_width]]
    return torch.stack([processor.post_process_masks([masks], size, binarize=False)[0] for masks in low_res]).float()


def _row(name: str, reference: torch.Tensor, logits: torch.Tensor) -> str:
    expected, found = reference > 0, logits > 0

    def iou(a, b):
        return (a & b).sum().item() / max((a | b).sum().item(), 1)

    per_object = (expected & found).flatten(2).sum(-1) / (expected | found).flatten(2).sum(-1).clamp(min=1)
    gap = (reference - logits).abs().max().item()
    return (f"| {name} | {iou(expected, found):.4f} | {per_object.min().item():.4f} | {iou(expected[0], found[0]):.4f} "
            f"| {iou(expected[1:], found[1:]):.4f} | {gap:.3f} |")


class _float32_islands:
    """Keeps the given components of a bfloat16 model in float32 while inside: their weights are
    cast up, their floating inputs upcast and their outputs cast back to bfloat16."""

    def __init__(self, model, islands):
        self.model, self.islands = model, islands

    def __enter__(self):
        for path, methods, kept in self.islands:
            module = self.model.get_submodule(path).float()
            for name in methods:
                setattr(module, name, _upcasting(getattr(module, name), kept))
        return self.model

    def __exit__(self, *exc_info):
        for path, methods, _ in self.islands:
            module = self.model.get_submodule(path)
            for name in methods:
                delattr(module, name)


def _upcasting(method, kept_fields):
    def upcast_call(*args, **kwargs):
        result = method(*_cast(args, torch.bfloat16, torch.float32), **_cast(kwargs, torch.bfloat16, torch.float32))
        return _cast(result, torch.float32, torch.bfloat16, kept_fields)

    return upcast_call


def _cast(value, source: torch.dtype, target: torch.dtype, kept_fields=()):
    """`value` with every `source` tensor in it (nested in tuples, lists, dicts and dataclasses)
    cast to `target`, except the named-tuple / dataclass fields `kept_fields`."""
    if isinstance(value, torch.Tensor):
        return value.to(target) if value.dtype == source else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(item if field in kept_fields else _cast(item, source, target)
                             for field, item in zip(value._fields, value)))
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(item, source, target) for item in value)
    if isinstance(value, dict):
        return {key: _cast(item, source, target) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {field.name: _cast(getattr(value, field.name), source, target)
                   for field in dataclasses.fields(value) if field.name not in kept_fields}
        return dataclasses.replace(value, **changes)
    return value


if __name__ == "__main__":
    raise SystemExit(main())
