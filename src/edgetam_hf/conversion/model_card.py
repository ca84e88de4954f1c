"""The model card (README.md) of a converted folder: Hub metadata, provenance, usage."""

import importlib.metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .convert import ConversionResult

PAPER_URL = "https://arxiv.org/abs/2501.07256"
ORIGINAL_CODE_URL = "https://github.com/facebookresearch/EdgeTAM"


def model_card(result: "ConversionResult", repo_id: str | None = None) -> str:
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
