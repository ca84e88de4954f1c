"""Export of EdgeTAM to ONNX: `export_onnx(model, out_dir)`: the image graphs, and for a video
model the memory encoder and the tracking step too.

Writes into a temporary sibling of `out_dir` and renames it into place only when every graph has
been exported and passed `onnx.checker`, so a failed export (a malformed checkpoint, a full disk)
leaves no folder behind. Needs torch, `onnx` and `onnxscript` (the `onnx` extra).
"""

import copy
import json
import os
from pathlib import Path

import torch

from ..image_processing import IMAGENET_MEAN, IMAGENET_STD
from ..modeling import EdgeTamModel
from ..modeling_video import EdgeTamVideoModel
from .graphs import ImageEncoderGraph, MaskPromptGraph, MemoryEncoderGraph, PromptMaskDecoderGraph, TrackingStepGraph
from .manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_ENCODER,
    MANIFEST_NAME,
    MASK_PROMPT,
    MEMORY_ENCODER,
    PROMPT_MASK_DECODER,
    TRACKING_STEP,
)
from .staging import staged_folder

OPSET = 18
EXPORT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def export_onnx(
    model: EdgeTamModel | EdgeTamVideoModel | str | os.PathLike,
    out_dir,
    dtype: str = "float32",
    source: str | None = None,
    extra_conditioning_slots: int = 1,
) -> Path:
    """Exports the image encoder and the prompt encoder + mask decoder to `out_dir`, and for a
    video model the memory encoder and the tracking step; returns `out_dir`.

    Args:
        model: an `EdgeTamModel` or `EdgeTamVideoModel`, or what `EdgeTamModel.from_pretrained`
            reads: Meta's original `.pt`, a converted folder or a Hub id (image graphs only).
        out_dir: the folder to create; it must not exist yet.
        dtype: "float32", or "float16" (weights and graph inputs / outputs in half precision).
        source: where `model` came from, recorded in the manifest (default: `model` when it is a path).
        extra_conditioning_slots: memory slots of the tracking step beyond `num_maskmem` (one
            prompted frame and `num_maskmem - 1` recent ones): how many more prompted frames an
            object may read at once. Each slot costs attention over its 512 tokens on every frame.

    Raises:
        ValueError: an unreadable or malformed checkpoint, an unknown dtype, or `out_dir` existing.
    """
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(EXPORT_DTYPES)}, got {dtype!r}")
    if isinstance(extra_conditioning_slots, bool) or not isinstance(extra_conditioning_slots, int) or extra_conditioning_slots < 0:
        raise ValueError(f"extra_conditioning_slots must be an int >= 0, got {extra_conditioning_slots!r}")
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists():  # before the minutes of loading (staged_folder checks again)
        raise ValueError(f"{out_dir} already exists; choose a new output folder")
    if isinstance(model, (str, os.PathLike)):
        source = source or str(model)
        model = EdgeTamModel.from_pretrained(str(model))
    elif model.device.type != "cpu" or model.dtype != EXPORT_DTYPES[dtype]:
        model = copy.deepcopy(model)  # the caller's model keeps its device and precision
    model = model.eval().to("cpu", EXPORT_DTYPES[dtype])

    try:
        with staged_folder(out_dir) as staging, torch.no_grad():
            graphs = _export_graphs(model, staging, EXPORT_DTYPES[dtype])
            if isinstance(model, EdgeTamVideoModel):
                graphs.update(_export_video_graphs(model, staging, EXPORT_DTYPES[dtype], extra_conditioning_slots))
            entries = {name: {"file": file, **_signature(staging / file)} for name, file in graphs.items()}
            manifest = _manifest(model, entries, dtype, source)
            (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    finally:
        _clear_position_encoding_caches(model)
    return out_dir


def _export_graphs(model: EdgeTamModel, folder: Path, dtype: torch.dtype, write=None) -> dict[str, str]:
    """Writes both graphs into `folder`; returns graph name -> file name. `write` (default: ONNX)
    is called as `_export` is; the ExecuTorch export passes its own, so both trace the same samples."""
    write = write or _export
    image_size = model.config.prompt_encoder_config.image_size
    pixel_values = torch.zeros(1, 3, image_size, image_size, dtype=dtype)
    encoder = ImageEncoderGraph(model).eval()
    encoder_file = f"{IMAGE_ENCODER}.onnx"
    write(
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
    write(
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


def _export_video_graphs(model: EdgeTamVideoModel, folder: Path, dtype: torch.dtype, extra_slots: int, write=None) -> dict[str, str]:
    """Writes the memory encoder, the tracking step and the mask prompt graph into `folder`;
    returns graph name -> file name. `write` as for `_export_graphs`."""
    write = write or _export
    config = model.config
    hidden = config.vision_config.fpn_hidden_size
    side = config.image_size
    mask_side = model.prompt_encoder.mask_input_size[0]
    features = model.get_frame_features(torch.zeros(1, 3, side, side, dtype=dtype))
    feat_s0, feat_s1 = features.high_resolution_features
    num_objects = torch.export.Dim("num_objects", min=1)
    # Two objects in the samples, so that the object axis is not specialised to 1.
    memory_encoder = MemoryEncoderGraph(model).eval()
    memory_file = f"{MEMORY_ENCODER}.onnx"
    write(
        memory_encoder,
        (features.vision_features, torch.zeros(2, 1, mask_side, mask_side, dtype=dtype), torch.ones(2, 1, dtype=dtype)),
        folder / memory_file,
        input_names=["vision_features", "mask_logits", "object_score_logits"],
        output_names=["memory_tokens"],
        dynamic_shapes=(None, {0: num_objects}, {0: num_objects}),
    )

    tokens_per_memory, memory_dim = memory_encoder.memory_position.shape[1:]
    num_memory_slots = config.num_maskmem + extra_slots
    num_pointer_slots = config.max_object_pointers_in_encoder + extra_slots
    step_inputs = (
        features.vision_features,
        feat_s0,
        feat_s1,
        torch.zeros(2, num_memory_slots, tokens_per_memory, memory_dim, dtype=dtype),
        torch.zeros(num_memory_slots, dtype=torch.long),
        torch.ones(2, num_memory_slots, dtype=torch.bool),
        torch.zeros(2, num_pointer_slots, hidden, dtype=dtype),
        torch.zeros(num_pointer_slots, dtype=dtype),
        torch.ones(2, num_pointer_slots, dtype=torch.bool),
        torch.tensor([[[10.0, 20.0], [0.0, 0.0]], [[50.0, 60.0], [0.0, 0.0]]], dtype=dtype),
        torch.tensor([[1, -1], [1, -1]]),
        torch.zeros(2, 1, mask_side, mask_side, dtype=dtype),
        torch.zeros(1, dtype=dtype),
        torch.ones(1, dtype=dtype),
    )
    num_points = torch.export.Dim("num_points", min=1)
    objects, objects_and_points = {0: num_objects}, {0: num_objects, 1: num_points}
    step_file = f"{TRACKING_STEP}.onnx"
    write(
        TrackingStepGraph(model).eval(),
        step_inputs,
        folder / step_file,
        input_names=[
            "vision_features",
            "high_res_feat_s0",
            "high_res_feat_s1",
            "memory_tokens",
            "memory_temporal_slot",
            "memory_valid",
            "object_pointers",
            "pointer_temporal_position",
            "pointer_valid",
            "point_coords",
            "point_labels",
            "mask_input",
            "has_mask_input",
            "multimask_output",
        ],
        output_names=["mask_logits", "object_pointer", "object_score_logits", "new_memory_tokens"],
        dynamic_shapes=(
            None, None, None, objects, None, objects, objects, None, objects, objects_and_points, objects_and_points,
            objects, None, None,
        ),
    )
    mask_file = f"{MASK_PROMPT}.onnx"
    write(
        MaskPromptGraph(model).eval(),
        (features.vision_features, feat_s0, feat_s1, torch.zeros(2, 1, side, side, dtype=dtype)),
        folder / mask_file,
        input_names=["vision_features", "high_res_feat_s0", "high_res_feat_s1", "mask_prompt"],
        output_names=["mask_logits", "object_pointer", "object_score_logits"],
        dynamic_shapes=(None, None, None, objects),
    )
    return {MEMORY_ENCODER: memory_file, TRACKING_STEP: step_file, MASK_PROMPT: mask_file}


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


def _manifest(model: EdgeTamModel, graphs: dict[str, dict], dtype: str, source) -> dict:
    """The manifest of `graphs` (name -> file, inputs, outputs), for ONNX and ExecuTorch folders alike."""
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
        "graphs": graphs,
        **({"video": _video_settings(model)} if isinstance(model, EdgeTamVideoModel) else {}),
    }


def _video_settings(model: EdgeTamVideoModel) -> dict:
    """What the video runtime needs besides the graphs: the session's rules and one constant."""
    config = model.config
    return {
        "num_maskmem": config.num_maskmem,
        "max_object_pointers_in_encoder": config.max_object_pointers_in_encoder,
        "max_cond_frame_num": config.max_cond_frame_num,
        "multimask_output_in_sam": config.multimask_output_in_sam,
        "multimask_min_pt_num": config.multimask_min_pt_num,
        "multimask_max_pt_num": config.multimask_max_pt_num,
        "multimask_output_for_tracking": config.multimask_output_for_tracking,
        "fill_hole_area": config.fill_hole_area,
        # The pointer of an object without a mask on a prompted frame (the placeholder's): an
        # empty mask is judged absent, so its pointer is the learned no-object pointer.
        "no_object_pointer": model.no_object_pointer.detach().float()[0].tolist(),
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
