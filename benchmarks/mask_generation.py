"""The mask-generation case: `pipeline("mask-generation")` on one image (truck.jpg when the shared
media is there), each implementation as its users call it, with the same weights and settings:

- ours: `edgetam_hf.everything.generate_masks` (what `edgetam-hf segment-everything` runs: the
  pipeline's masks with the predicted-IoU filter before the upsampling) on our `EdgeTamModel`;
- transformers: the same pipeline on its built-in `EdgeTamModel` and `Sam2ImageProcessor` (its own
  preprocessing and point grid; its NMS needs torchvision's C operators);
- sam2: Meta's `SAM2AutomaticMaskGenerator`, when the lineup has the original model.

The settings are the original's defaults (32x32 points, 64 per batch, IoU 0.8, stability 0.95,
NMS 0.7), with `--mask-generation-points N` for an N x N grid (4x4 with --tiny). The notes give each implementation's mask count and, where the
original ran, the IoU of our masks with its masks. The table's ours / transformers column is the
same-run ratio issue 30 asks to be <= 0.2; peak memory is in the table too.

Run alone: `python -m benchmarks.run --cases mask_generation` (with `--weights` for an original
checkpoint, `--repeats`, `--device`, `--tiny`; see benchmarks/run.py); it prints the table.
"""

import numpy as np
import torch

from edgetam_hf.mask_generation import ORIGINAL_MASK_GENERATION_DEFAULTS
from edgetam_hf.masks_and_boxes import rle_to_mask

from .media import BenchmarkImage
from .memory import peak_memory_mib
from .models import ORIGINAL, OURS, TRANSFORMERS, Lineup
from .results import CaseResult
from .timing import time_alternating

TINY_POINTS_PER_SIDE = 4
# The pipeline's keyword arguments that SAM2AutomaticMaskGenerator spells differently.
_ORIGINAL_NAMES = {"points_per_crop": "points_per_side", "crops_nms_thresh": "box_nms_thresh", "crops_n_layers": "crop_n_layers"}


def run_mask_generation(lineup: Lineup, image: BenchmarkImage, options) -> CaseResult:
    settings = dict(ORIGINAL_MASK_GENERATION_DEFAULTS)
    settings["points_per_crop"] = TINY_POINTS_PER_SIDE if options.tiny else options.mask_generation_points
    side = settings["points_per_crop"]
    title = f"mask-generation pipeline, {image.image.width}x{image.image.height}, {side}x{side} points"
    result = CaseResult("mask_generation", title)
    generators = _generators(lineup, settings)
    outputs = {}

    def call(name):
        outputs[name] = generators[name](image.image)

    calls = {name: (lambda name=name: call(name)) for name in generators}
    samples, errors = time_alternating(calls, options.repeats, options.warmup, options.device)
    result.samples.update(samples)
    result.errors.update(errors)
    for name in samples:
        result.peak_memory_mib[name] = peak_memory_mib(calls[name], options.device)
    result.notes += _mask_notes(outputs)
    return result


def _generators(lineup: Lineup, settings: dict) -> dict:
    """Implementation name -> function(PIL image) -> list of (height, width) bool masks."""
    from transformers import pipeline

    from edgetam_hf.everything import generate_masks

    generators = {}
    if OURS in lineup.models:
        model, image_processor = lineup.models[OURS], lineup.processors[OURS].image_processor
        ours = {"points_per_side" if key == "points_per_crop" else key: value for key, value in settings.items()}
        del ours["crop_n_points_downscale_factor"]  # generate_masks has one grid size for every crop
        generators[OURS] = lambda image: generate_masks(model, image_processor, image, **ours)["masks"]
    if TRANSFORMERS in lineup.models:
        generator = pipeline(
            "mask-generation", model=lineup.models[TRANSFORMERS], image_processor=lineup.processors[TRANSFORMERS].image_processor
        )
        generators[TRANSFORMERS] = lambda image: generator(image, **settings)["masks"]
    if ORIGINAL in lineup.models:
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        original_kwargs = {_ORIGINAL_NAMES.get(key, key): value for key, value in settings.items()}
        original_kwargs["crop_nms_thresh"] = settings["crops_nms_thresh"]
        generator = SAM2AutomaticMaskGenerator(lineup.models[ORIGINAL].model, output_mode="uncompressed_rle", **original_kwargs)
        generators[ORIGINAL] = lambda image: [
            rle_to_mask(annotation["segmentation"]) for annotation in generator.generate(np.asarray(image.convert("RGB")))
        ]
    return generators


def _mask_notes(outputs: dict) -> list[str]:
    notes = ["masks: " + ", ".join(f"{name} {len(masks)}" for name, masks in outputs.items())]
    if OURS in outputs and ORIGINAL in outputs:
        notes.append(f"ours vs sam2: {_match_summary(outputs[OURS], outputs[ORIGINAL])}")
    return notes


def _match_summary(ours: list, reference: list) -> str:
    """Each of our masks against the reference mask it overlaps most."""
    if not ours or not reference:
        return "no masks to compare" if len(ours) == len(reference) else "different counts"
    our_masks = torch.stack(ours).flatten(1).float()
    reference_masks = torch.stack(reference).flatten(1).float()
    intersections = our_masks @ reference_masks.T
    unions = our_masks.sum(1)[:, None] + reference_masks.sum(1)[None, :] - intersections
    best = (intersections / unions).max(dim=1).values
    return f"min IoU {best.min().item():.4f}, {int((best == 1).sum())} of {len(best)} masks identical"
