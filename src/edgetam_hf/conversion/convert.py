"""`convert_checkpoint`: Meta's `edgetam.pt` -> a verified `save_pretrained` folder, written whole or not at all."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ..weights import load_original_state_dict, read_original_checkpoint
from .model_card import model_card
from .staging import check_output_dir, move_into_place, staging_dir
from .verification import VerificationError, VerificationReport, verify_folder

MODEL_CHOICES = ("image", "video", "both")


@dataclass
class ConversionResult:
    """What `convert_checkpoint` wrote, and from what (the model card states it)."""

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
    check_output_dir(output_dir, overwrite)
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
    with staging_dir(output_dir) as staging:
        save_model_folder(converted, staging)
        if verify:
            result.verification = verify_folder(staging, original, checkpoint_path)
            if not result.verification.passed:
                raise VerificationError(result.verification)
        (staging / "README.md").write_text(model_card(result, repo_id), encoding="utf-8")
        move_into_place(staging, output_dir)
    return result


def _converted_model(model: str, original: dict[str, torch.Tensor]):
    from ..configuration import EdgeTamConfig, EdgeTamVideoConfig

    if model == "image":
        from ..modeling import EdgeTamModel

        converted = EdgeTamModel(EdgeTamConfig())
    else:
        from ..modeling_video import EdgeTamVideoModel

        converted = EdgeTamVideoModel(EdgeTamVideoConfig())
    load_original_state_dict(converted, original)
    return converted.eval()


def save_model_folder(model, folder) -> None:
    """`model.save_pretrained(folder)` with the processor its Auto classes name (the video processor for
    the video model)."""
    from ..modeling_video import EdgeTamVideoModel
    from ..processing import EdgeTamProcessor
    from ..video_processing import EdgeTamVideoProcessor

    model.save_pretrained(folder)
    processor_class = EdgeTamVideoProcessor if isinstance(model, EdgeTamVideoModel) else EdgeTamProcessor
    processor_class().save_pretrained(folder)


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
