"""`verify_folder`: a converted folder's models against the mapped weights and Meta's own predictor."""

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..conventions import MASK_LOGITS_CLAMP
from ..numerics import float32_tolerance, max_abs_difference
from ..weights import load_original_state_dict

# The verification prompt: the box around the sample image's red disc, in its pixels.
VERIFY_BOX_INDEX = 0


class VerificationError(RuntimeError):
    """The converted folder does not reproduce the mapped weights (or Meta's code); nothing was written."""

    def __init__(self, report: "VerificationReport"):
        failed = "; ".join(check.line() for check in report.checks if not check.passed)
        super().__init__(f"verification failed: {failed}")
        self.report = report


@dataclass
class Check:
    """One comparison of the verification; `max_abs_difference` None means it was skipped."""

    name: str
    max_abs_difference: float | None
    tolerance: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.max_abs_difference is None or self.max_abs_difference <= self.tolerance

    def line(self) -> str:
        if self.max_abs_difference is None:
            return f"{self.name}: skipped ({self.detail})"
        verdict = "ok" if self.passed else "FAILED"
        detail = f", {self.detail}" if self.detail else ""
        difference = f"max |difference| {self.max_abs_difference:.3g} (tolerance {self.tolerance:.3g}{detail})"
        return f"{self.name}: {verdict}, {difference}"


@dataclass
class VerificationReport:
    """What `verify_folder` ran and found."""

    prompt: str
    iou_scores: list[float]
    object_score_logit: float
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def lines(self) -> list[str]:
        scores = ", ".join(f"{score:.4f}" for score in self.iou_scores)
        return [
            f"prompt: {self.prompt}",
            f"IoU scores of the 3 masks: {scores}; object score logit {self.object_score_logit:.4f}",
            *(check.line() for check in self.checks),
        ]


def verify_folder(folder, original: dict[str, torch.Tensor], checkpoint_path=None) -> VerificationReport:
    """Runs the folder's models on the built-in sample image and box, against the mapped weights.

    - The image model loaded from the folder must give the outputs of the image model that
      `load_original_state_dict` fills from `original` in memory, within float32 rounding
      (`numerics.float32_tolerance`: the weights sit in other buffers, which some CPUs' kernels
      round differently).
    - For a video folder, the video model loaded from it must hold exactly the mapped weights
      (a copy, no arithmetic: tolerance 0).
    - When Meta's `sam2` package is importable (and `checkpoint_path` is given), the mapped model
      must give the original `SAM2ImagePredictor`'s logits and IoU scores, within the same tolerance.
    """
    from ..configuration import EdgeTamConfig
    from ..modeling import EdgeTamModel
    from ..processing import EdgeTamProcessor
    from ..sample_media import SAMPLE_BOXES, render_sample_image

    image, box = render_sample_image(), SAMPLE_BOXES[VERIFY_BOX_INDEX]
    processor = EdgeTamProcessor.from_pretrained(folder)
    inputs = processor(images=image, input_boxes=[[list(box)]], return_tensors="pt")
    mapped = EdgeTamModel(EdgeTamConfig()).eval()
    load_original_state_dict(mapped, original)
    expected = _image_outputs(mapped, inputs)
    loaded = _image_outputs(EdgeTamModel.from_pretrained(folder), inputs)

    report = VerificationReport(
        prompt=f"built-in sample image {image.width}x{image.height}, box {box}, 3 masks",
        iou_scores=expected["iou_scores"].flatten().tolist(),
        object_score_logit=expected["object_score_logits"].item(),
    )
    report.checks.append(_outputs_check("EdgeTamModel from the folder vs the mapped weights in memory", loaded, expected))
    if _is_video_folder(folder):
        report.checks.append(_video_weights_check(folder, original))
    report.checks.append(_original_check(checkpoint_path, image, box, expected))
    return report


@torch.no_grad()
def _image_outputs(model, inputs) -> dict[str, torch.Tensor]:
    outputs = model(pixel_values=inputs["pixel_values"], input_boxes=inputs["input_boxes"], multimask_output=True)
    return {
        "pred_masks": outputs.pred_masks,  # (1, 1, 3, 256, 256)
        "iou_scores": outputs.iou_scores,  # (1, 1, 3)
        "object_score_logits": outputs.object_score_logits,  # (1, 1, 1)
    }


def _outputs_check(name: str, found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> Check:
    """The worst output, measured against its own float32 tolerance; the figures name it."""
    excess = {key: max_abs_difference(found[key], value) / float32_tolerance(value) for key, value in expected.items()}
    worst = max(excess, key=excess.get)
    difference = max_abs_difference(found[worst], expected[worst])
    return Check(name, difference, float32_tolerance(expected[worst]), detail=f"worst output {worst}")


def _is_video_folder(folder) -> bool:
    model_type = json.loads((Path(folder) / "config.json").read_text())["model_type"]
    return model_type in ("edgetam_video", "edgetam_hf_video")


def _video_weights_check(folder, original) -> Check:
    from ..configuration import EdgeTamVideoConfig
    from ..modeling_video import EdgeTamVideoModel

    mapped = EdgeTamVideoModel(EdgeTamVideoConfig())
    load_original_state_dict(mapped, original)
    loaded = EdgeTamVideoModel.from_pretrained(folder).state_dict()
    expected = mapped.state_dict()
    difference = max(max_abs_difference(loaded[name], tensor) for name, tensor in expected.items())
    return Check(
        "EdgeTamVideoModel from the folder vs the mapped weights in memory",
        difference,
        0.0,
        detail=f"all {len(expected)} tensors compared",
    )


def _original_check(checkpoint_path, image, box, expected) -> Check:
    name = "mapped weights vs Meta's sam2 SAM2ImagePredictor"
    if checkpoint_path is None:
        return Check(name, None, 0.0, detail="no original checkpoint path given")
    try:
        import sam2  # noqa: F401  (Meta's EdgeTAM code, e.g. `pip install edgetam-dimos`)
    except ImportError:
        return Check(name, None, 0.0, detail="the original `sam2` package is not importable")
    original_low_res, original_iou = _original_image_outputs(checkpoint_path, image, box)
    ours_low_res = expected["pred_masks"].reshape(original_low_res.shape)
    ours_low_res = ours_low_res.clamp(-MASK_LOGITS_CLAMP, MASK_LOGITS_CLAMP)
    logit_difference = (ours_low_res - original_low_res).abs().max().item()
    iou_difference = (expected["iou_scores"].reshape(original_iou.shape) - original_iou).abs().max().item()
    tolerance = float32_tolerance(original_low_res)
    return Check(
        name,
        max(logit_difference, iou_difference),
        tolerance,
        detail=f"logits {logit_difference:.3g}, IoU {iou_difference:.3g}",
    )


def _original_image_outputs(checkpoint_path, image, box) -> tuple[torch.Tensor, torch.Tensor]:
    """Meta's image predictor on the same image and box: (3, 256, 256) logits and (3,) IoU scores."""
    import sam2.modeling.backbones.timm as original_timm_backbone
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    with _timm_without_download(original_timm_backbone):
        original_model = build_sam2("configs/edgetam.yaml", str(checkpoint_path), device="cpu")
    predictor = SAM2ImagePredictor(original_model)
    with torch.no_grad():
        predictor.set_image(np.asarray(image))
        _, iou_scores, low_res_logits = predictor.predict(
            box=np.asarray(box, dtype=np.float32), multimask_output=True, return_logits=True
        )
    return torch.from_numpy(np.asarray(low_res_logits)), torch.from_numpy(np.asarray(iou_scores))


@contextlib.contextmanager
def _timm_without_download(original_timm_backbone):
    """Meta's TimmBackbone asks timm for ImageNet weights (a download) that the checkpoint then
    replaces entirely; build the trunk without them, and put timm's function back afterwards."""
    create_model = original_timm_backbone.create_model

    def create_model_without_weights(*args, **kwargs):
        return create_model(*args, **{**kwargs, "pretrained": False})

    original_timm_backbone.create_model = create_model_without_weights
    try:
        yield
    finally:
        original_timm_backbone.create_model = create_model
