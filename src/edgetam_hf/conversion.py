"""Meta's EdgeTAM checkpoint -> a `save_pretrained` folder, its verification and its upload.

The folder holds config.json (which transformers' EdgeTam classes read too, see loading.py),
model.safetensors, the processor config and a model card. It is written into a hidden temporary sibling and renamed
into place only when everything succeeded (verification included, when asked), so a refusal or a
failure leaves nothing behind.

`--model image` writes the image model only. `video` and `both` (the default) write the same
folder: every weight, with the video model's config; the image model loads it too (leaving the
memory weights aside), as transformers' `facebook/EdgeTAM` serves both `EdgeTamModel` and
`EdgeTamVideoModel`, and the verification checks both models on it.
"""

import contextlib
import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .numerics import float32_tolerance, max_abs_difference
from .weights import load_original_state_dict, read_original_checkpoint

MODEL_CHOICES = ("image", "video", "both")
PAPER_URL = "https://arxiv.org/abs/2501.07256"
ORIGINAL_CODE_URL = "https://github.com/facebookresearch/EdgeTAM"
# The verification prompt: the box around the sample image's red disc, in its pixels.
VERIFY_BOX_INDEX = 0
# SAM2ImagePredictor returns its low-resolution logits clamped to this range.
ORIGINAL_LOGIT_CLAMP = 32.0


class VerificationError(RuntimeError):
    """The converted folder does not reproduce the mapped weights (or Meta's code); nothing was written."""

    def __init__(self, report: "VerificationReport"):
        failed = "; ".join(check.line() for check in report.checks if not check.passed)
        super().__init__(f"verification failed: {failed}")
        self.report = report


class HubPushError(RuntimeError):
    """The upload to the Hub failed (no network, no token, no permission, ...)."""


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


@dataclass
class ConversionResult:
    output_dir: Path
    model: str  # one of MODEL_CHOICES
    model_classes: tuple[str, ...]  # the classes that load the folder
    num_original_keys: int
    num_saved_tensors: int
    num_parameters: int  # trainable tensors (buffers such as BatchNorm statistics excluded)
    checkpoint_sha256: str
    verification: VerificationReport | None = None


def convert_checkpoint(
    checkpoint_path,
    output_dir,
    model: str = "both",
    verify: bool = False,
    overwrite: bool = False,
    repo_id: str | None = None,
) -> ConversionResult:
    """Converts Meta's `edgetam.pt` into a `save_pretrained` folder at `output_dir`.

    Raises ValueError (naming the keys) when a key is unmapped, missing or of the wrong shape, and
    VerificationError when `verify` finds a difference; in every failure nothing is written.
    `repo_id` only names the model in the card's usage examples.
    """
    if model not in MODEL_CHOICES:
        raise ValueError(f"model must be one of {MODEL_CHOICES}, got {model!r}")
    output_dir = Path(output_dir)
    _check_output_dir(output_dir, overwrite)
    original = read_original_checkpoint(checkpoint_path)
    converted = _converted_model(model, original)
    result = ConversionResult(
        output_dir=output_dir,
        model=model,
        model_classes=("EdgeTamModel",) if model == "image" else ("EdgeTamVideoModel", "EdgeTamModel"),
        num_original_keys=len(original),
        num_saved_tensors=len(converted.state_dict()),
        num_parameters=converted.num_parameters(),
        checkpoint_sha256=_sha256(checkpoint_path),
    )
    with _staging_dir(output_dir) as staging:
        save_model_folder(converted, staging)
        if verify:
            result.verification = verify_folder(staging, original, checkpoint_path)
            if not result.verification.passed:
                raise VerificationError(result.verification)
        (staging / "README.md").write_text(model_card(result, repo_id), encoding="utf-8")
        _move_into_place(staging, output_dir)
    return result


def _converted_model(model: str, original: dict[str, torch.Tensor]):
    from .configuration import EdgeTamConfig, EdgeTamVideoConfig

    if model == "image":
        from .modeling import EdgeTamModel

        converted = EdgeTamModel(EdgeTamConfig())
    else:
        from .modeling_video import EdgeTamVideoModel

        converted = EdgeTamVideoModel(EdgeTamVideoConfig())
    load_original_state_dict(converted, original)
    return converted.eval()


def save_model_folder(model, folder) -> None:
    """`model.save_pretrained(folder)` with the processor its Auto classes name (the video processor for
    the video model)."""
    from .modeling_video import EdgeTamVideoModel
    from .processing import EdgeTamProcessor
    from .video_processing import EdgeTamVideoProcessor

    model.save_pretrained(folder)
    processor_class = EdgeTamVideoProcessor if isinstance(model, EdgeTamVideoModel) else EdgeTamProcessor
    processor_class().save_pretrained(folder)


def _check_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"{output_dir} exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise ValueError(f"{output_dir} exists and is not empty; pass overwrite=True (--overwrite) to replace it")


@contextlib.contextmanager
def _staging_dir(output_dir: Path):
    """A hidden temporary folder next to `output_dir` (same file system, so the final rename is
    atomic), removed on any failure together with the parent folders it had to create."""
    created_parent = _first_missing_ancestor(output_dir.parent)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".partial", dir=output_dir.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_parent is not None:
            shutil.rmtree(created_parent, ignore_errors=True)
        raise


def _first_missing_ancestor(path: Path) -> Path | None:
    missing = None
    while not path.exists():
        missing, path = path, path.parent
    return missing


def _move_into_place(staging: Path, output_dir: Path) -> None:
    """Renames `staging` to `output_dir`; an existing (allowed) folder is replaced only then."""
    staging.chmod(0o755)  # mkdtemp makes it private to the user
    previous = None
    if output_dir.exists():
        previous = output_dir.with_name(f".{output_dir.name}.{os.getpid()}.replaced")
        output_dir.rename(previous)
    try:
        staging.rename(output_dir)
    except BaseException:
        if previous is not None:
            previous.rename(output_dir)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- verification


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
    from .configuration import EdgeTamConfig
    from .modeling import EdgeTamModel
    from .processing import EdgeTamProcessor
    from .sample_media import SAMPLE_BOXES, render_sample_image

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
    import json

    model_type = json.loads((Path(folder) / "config.json").read_text())["model_type"]
    return model_type in ("edgetam_video", "edgetam_hf_video")


def _video_weights_check(folder, original) -> Check:
    from .configuration import EdgeTamVideoConfig
    from .modeling_video import EdgeTamVideoModel

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
    ours_low_res = ours_low_res.clamp(-ORIGINAL_LOGIT_CLAMP, ORIGINAL_LOGIT_CLAMP)
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


# ---------------------------------------------------------------------------- model card and Hub


def model_card(result: ConversionResult, repo_id: str | None = None) -> str:
    """README.md with the Hub metadata (library, pipeline tag, license, paper) and usage."""
    from huggingface_hub import ModelCardData

    metadata = ModelCardData(
        library_name="transformers",
        pipeline_tag="mask-generation",
        license="apache-2.0",
        tags=["edgetam", "sam2", "edgetam-hf", "arxiv:2501.07256"],
    )
    model_id = repo_id or str(result.output_dir)
    classes = " and ".join(f"`{name}`" for name in result.model_classes)
    sections = [
        f"---\n{metadata.to_yaml()}\n---",
        "# EdgeTAM",
        f"EdgeTAM, the on-device Track Anything Model ([paper]({PAPER_URL}), [code]({ORIGINAL_CODE_URL})): a "
        "RepViT-M1 image encoder with an FPN neck, SAM 2's prompt encoder and mask decoder, and for video a "
        "memory encoder, a 2D spatial perceiver and memory attention.",
        f"Converted from Meta's original checkpoint (sha256 `{result.checkpoint_sha256}`) by "
        f"[edgetam-hf](https://pypi.org/project/edgetam-hf/) {_package_version()}. This folder loads into "
        f"{classes}; {result.num_parameters:,} parameters.",
        "## Use with edgetam-hf (outputs equal to Meta's code)",
        "```python\n"
        "from PIL import Image\n"
        "from edgetam_hf import EdgeTamModel, EdgeTamProcessor\n\n"
        f'model = EdgeTamModel.from_pretrained("{model_id}")\n'
        f'processor = EdgeTamProcessor.from_pretrained("{model_id}")\n'
        'image = Image.open("truck.jpg").convert("RGB")\n'
        'inputs = processor(images=image, input_boxes=[[[75, 275, 1725, 850]]], return_tensors="pt")\n'
        "outputs = model(**inputs)  # 3 masks per box, with IoU scores\n"
        'masks = processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"])[0]\n'
        "```",
        "## Auto classes and the pipeline",
        "With edgetam-hf installed, transformers' Auto classes load this folder without importing it "
        "(`trust_remote_code=True` runs the small `edgetam_hf_classes.py` here, which imports edgetam-hf):",
        "```python\n"
        "from transformers import AutoModel, pipeline\n\n"
        f'model = AutoModel.from_pretrained("{model_id}", trust_remote_code=True)\n'
        f'generator = pipeline("mask-generation", model="{model_id}", trust_remote_code=True)\n'
        "```",
        "## Use with transformers' own EdgeTAM classes",
        "The weight names are transformers' EdgeTam names and config.json describes the model in its "
        "vocabulary, so transformers' own classes load this folder too "
        f'(`transformers.EdgeTamModel.from_pretrained("{model_id}")`, which logs that the model types differ). '
        "Their preprocessing differs from the original's (it resizes the uint8 image); edgetam-hf's "
        "processor reproduces Meta's.",
    ]
    if result.verification is not None:
        lines = "\n".join(f"- {line}" for line in result.verification.lines())
        sections += ["## Verification at conversion time", lines]
    return "\n\n".join(sections) + "\n"


def _package_version() -> str:
    try:
        return importlib.metadata.version("edgetam-hf")
    except importlib.metadata.PackageNotFoundError:
        return "(development tree)"


def push_to_hub(folder, repo_id: str, private: bool = False, revision: str | None = None, token=None) -> str:
    """Uploads `folder` to the Hub model repo `repo_id` (created if missing); returns the commit URL.

    `private` applies when the repo is created; `revision` names a branch, created from main if
    missing. Any failure (no network, offline mode, no token, no permission) becomes a HubPushError
    with a one-line message.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            revision=revision,
            commit_message="Upload EdgeTAM converted by edgetam-hf",
        )
    # huggingface_hub reports network trouble under many types (httpx's, OSError, its own), and
    # the caller needs one line, not a trace.
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise HubPushError(f"could not push to the Hub repo {repo_id} ({type(error).__name__}: {reason})") from error
    return getattr(commit, "commit_url", None) or f"https://huggingface.co/{repo_id}"
