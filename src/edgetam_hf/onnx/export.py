"""Export of EdgeTAM's image graphs to ONNX: `export_onnx(model, out_dir)`.

Writes into a temporary sibling of `out_dir` and renames it into place only when every graph has
been exported and passed `onnx.checker`, so a failed export (a malformed checkpoint, a full disk)
leaves no folder behind. Needs torch, `onnx` and `onnxscript` (the `onnx` extra).
"""

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..image_processing import IMAGENET_MEAN, IMAGENET_STD
from ..modeling import EdgeTamModel
from .graphs import ImageEncoderGraph, PromptMaskDecoderGraph
from .manifest import FORMAT_NAME, FORMAT_VERSION, IMAGE_ENCODER, MANIFEST_NAME, PROMPT_MASK_DECODER

OPSET = 18
EXPORT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def export_onnx(
    model: EdgeTamModel | str | os.PathLike, out_dir, dtype: str = "float32", source: str | None = None
) -> Path:
    """Exports the image encoder and the prompt encoder + mask decoder to `out_dir`; returns it.

    Args:
        model: an `EdgeTamModel` (or video model), or what `EdgeTamModel.from_pretrained` reads:
            Meta's original `.pt`, a converted folder or a Hub id.
        out_dir: the folder to create; it must not exist yet.
        dtype: "float32", or "float16" (weights and graph inputs / outputs in half precision).
        source: where `model` came from, recorded in the manifest (default: `model` when it is a path).

    Raises:
        ValueError: an unreadable or malformed checkpoint, an unknown dtype, or `out_dir` existing.
    """
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(EXPORT_DTYPES)}, got {dtype!r}")
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists():
        raise ValueError(f"{out_dir} already exists; choose a new output folder")
    if isinstance(model, (str, os.PathLike)):
        source = source or str(model)
        model = EdgeTamModel.from_pretrained(str(model))
    elif model.device.type != "cpu" or model.dtype != EXPORT_DTYPES[dtype]:
        model = copy.deepcopy(model)  # the caller's model keeps its device and precision
    model = model.eval().to("cpu", EXPORT_DTYPES[dtype])

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        with torch.no_grad():
            graphs = _export_graphs(model, staging, EXPORT_DTYPES[dtype])
        manifest = _manifest(model, staging, graphs, dtype, source)
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _clear_position_encoding_caches(model)
    return out_dir


def _export_graphs(model: EdgeTamModel, folder: Path, dtype: torch.dtype) -> dict[str, str]:
    """Writes both graphs into `folder`; returns graph name -> file name."""
    image_size = model.config.prompt_encoder_config.image_size
    pixel_values = torch.zeros(1, 3, image_size, image_size, dtype=dtype)
    encoder = ImageEncoderGraph(model).eval()
    encoder_file = f"{IMAGE_ENCODER}.onnx"
    _export(
        encoder,
        (pixel_values,),
        folder / encoder_file,
        input_names=["pixel_values"],
        output_names=["high_res_feat_s0", "high_res_feat_s1", "vision_features"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
    )

    feat_s0, feat_s1, vision_features = encoder(pixel_values)
    mask_side = 4 * model.prompt_encoder.image_embedding_size[0]
    # Sample prompts: two objects, a box and clicks, so that no size is 0 or 1 (those would be
    # specialised). The graph takes any number of objects >= 1 and of points >= 0.
    decoder_inputs = (
        vision_features,
        feat_s0,
        feat_s1,
        torch.tensor([[[10.0, 20.0], [200.0, 220.0], [0.0, 0.0]], [[50.0, 60.0], [70.0, 90.0], [0.0, 0.0]]], dtype=dtype),
        torch.tensor([[2, 3, -1], [1, 0, -1]]),
        torch.zeros(2, 1, mask_side, mask_side, dtype=dtype),
        torch.zeros(1, dtype=dtype),
    )
    num_objects, num_points = torch.export.Dim("num_objects", min=1), torch.export.Dim("num_points", min=0)
    decoder_file = f"{PROMPT_MASK_DECODER}.onnx"
    _export(
        PromptMaskDecoderGraph(model).eval(),
        decoder_inputs,
        folder / decoder_file,
        input_names=[
            "vision_features",
            "high_res_feat_s0",
            "high_res_feat_s1",
            "point_coords",
            "point_labels",
            "mask_input",
            "has_mask_input",
        ],
        output_names=[
            "multimask_logits",
            "multimask_iou_scores",
            "single_mask_logits",
            "single_iou_scores",
            "object_score_logits",
        ],
        dynamic_shapes=(
            None,
            None,
            None,
            {0: num_objects, 1: num_points},
            {0: num_objects, 1: num_points},
            {0: num_objects},
            None,
        ),
    )
    return {IMAGE_ENCODER: encoder_file, PROMPT_MASK_DECODER: decoder_file}


def _clear_position_encoding_caches(model: EdgeTamModel) -> None:
    """Tracing fills the position encodings' caches with tensors of the tracer's own kind; the
    model keeps running in PyTorch after an export, so they are emptied to be rebuilt on use."""
    for module in model.modules():
        if isinstance(getattr(module, "_cache", None), dict):
            module._cache.clear()


def _export(module, args, path: Path, input_names, output_names, dynamic_shapes) -> None:
    import onnx

    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=input_names,
        output_names=output_names,
        dynamic_shapes=dynamic_shapes,
        opset_version=OPSET,
        external_data=False,  # one self-contained file per graph (well under protobuf's 2 GB)
        dynamo=True,
    )
    onnx.checker.check_model(str(path), full_check=True)


def _manifest(model: EdgeTamModel, folder: Path, graphs: dict[str, str], dtype: str, source) -> dict:
    config = model.config
    image_size = config.prompt_encoder_config.image_size
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "exported_by": f"edgetam-hf (torch {torch.__version__})",
        "source": str(source) if source is not None else None,
        "opset": OPSET,
        "dtype": dtype,
        "preprocessing": {
            "image_size": image_size,
            "mask_size": 4 * model.prompt_encoder.image_embedding_size[0],
            "image_mean": list(IMAGENET_MEAN),
            "image_std": list(IMAGENET_STD),
            "resize": "bilinear, antialiased, align_corners=False, on float RGB in [0, 1]",
        },
        "graphs": {name: {"file": file, **_signature(folder / file)} for name, file in graphs.items()},
    }


def _signature(path: Path) -> dict:
    """The inputs and outputs of an ONNX file: name, element type and shape (a name for a dynamic axis)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(value) -> dict:
        tensor_type = value.type.tensor_type
        shape = [dim.dim_param or dim.dim_value for dim in tensor_type.shape.dim]
        return {"name": value.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name, "shape": shape}

    return {"inputs": [describe(value) for value in graph.input], "outputs": [describe(value) for value in graph.output]}
