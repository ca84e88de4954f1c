"""`export_executorch(model, out_dir, quantize=None)`: the ONNX export's graphs as ExecuTorch
programs with the XNNPACK delegate, and the same manifest.

The graphs are traced from the same wrappers on the same samples as the ONNX export (its
`_export_graphs` / `_export_video_graphs`, given this module's writer). int8 goes through PT2E:
XNNPACK's quantizer (weights per channel, activations per tensor), calibrated by running the
float32 graphs on frames as the ONNX int8 build is (`edgetam_hf.onnx.quantization`), on the same
graphs (`DEFAULT_INT8_GRAPHS`). Needs torch and `executorch` (which pins the torch it runs with;
docs/export.md).
"""

import json
from pathlib import Path

import numpy as np
import torch

from ..modeling import EdgeTamModel
from ..modeling_video import EdgeTamVideoModel
from ..onnx.export import _clear_position_encoding_caches, _export_graphs, _export_video_graphs, _manifest
from ..onnx.manifest import EXECUTORCH_RUNTIME, MANIFEST_NAME
from ..onnx.quantization import DEFAULT_INT8_GRAPHS, calibration_feeds
from ..onnx.staging import staged_folder

# ExecuTorch plans memory for the largest shape a dynamic axis may take: objects tracked at once
# and prompt tokens per object (clicks and box corners, plus the padding ones).
MAX_OBJECTS = 16
MAX_POINTS = 16


def export_executorch(model: EdgeTamModel, out_dir, quantize: str | None = None, frames=None, source=None) -> Path:
    """Writes `.pte` programs and `manifest.json` to `out_dir` (which must not exist); returns it.

    Args:
        model: an `EdgeTamModel` (image graphs) or `EdgeTamVideoModel` (and the video graphs).
        quantize: None for float32, or "int8" (`DEFAULT_INT8_GRAPHS` quantized, the rest float32).
        frames: with "int8", the (H, W, 3) uint8 frames to calibrate on
            (`edgetam_hf.onnx.quantization.calibration_frames`).
        source: where `model` came from, recorded in the manifest.
    """
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if quantize and frames is None:
        raise ValueError("quantize='int8' needs frames to calibrate on (edgetam_hf.onnx.quantization.calibration_frames)")
    model = model.eval().to("cpu", torch.float32)
    traced = {}  # graph name -> _Traced

    def collect(module, args, path, input_names, output_names, dynamic_shapes):
        traced[Path(path).stem] = _Traced(module, args, input_names, output_names, dynamic_shapes)

    try:
        with staged_folder(out_dir) as staging, torch.no_grad():
            _export_graphs(model, staging, torch.float32, write=collect)
            if isinstance(model, EdgeTamVideoModel):
                _export_video_graphs(model, staging, torch.float32, extra_slots=1, write=collect)
            entries = {name: entry.signature(name) for name, entry in traced.items()}
            manifest = _manifest(model, entries, "float32", source)
            manifest.pop("opset")
            manifest["runtime"] = EXECUTORCH_RUNTIME
            int8 = set(DEFAULT_INT8_GRAPHS) & set(traced) if quantize else set()
            runners = {name: entry.runner() for name, entry in traced.items()}
            feeds = calibration_feeds(runners, manifest, frames, sorted(int8)) if int8 else {}
            for name, entry in traced.items():
                (staging / entry.file_name(name)).write_bytes(entry.lower(feeds.get(name) if name in int8 else None))
                manifest["graphs"][name]["precision"] = "int8" if name in int8 else "float32"
            (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    finally:
        _clear_position_encoding_caches(model)
    return Path(out_dir).expanduser()


class _Traced:
    """One graph as the shared export code hands it over: the module, its samples and names."""

    def __init__(self, module, args, input_names, output_names, dynamic_shapes):
        self.module, self.args = module, args
        self.input_names, self.output_names = list(input_names), list(output_names)
        self.dynamic_shapes = _bounded(dynamic_shapes)

    @staticmethod
    def file_name(name: str) -> str:
        return f"{name}.pte"

    def signature(self, name: str) -> dict:
        """The manifest entry, as the ONNX export's `_signature` writes it (a name for a dynamic axis)."""
        outputs = _as_tuple(self.module(*self.args))
        # A per-object output has the objects axis of the first input that has one.
        objects = next(((dims[0], sample.shape[0]) for sample, dims in zip(self.args, self.dynamic_shapes, strict=True) if dims and 0 in dims), None)

        def describe(value_name, tensor, dims) -> dict:
            shape = [dims[axis].__name__ if dims and axis in dims else size for axis, size in enumerate(tensor.shape)]
            return {"name": value_name, "dtype": str(tensor.dtype).removeprefix("torch."), "shape": shape}

        def output_dims(tensor):
            return {0: objects[0]} if objects and tensor.dim() and tensor.shape[0] == objects[1] else None

        return {
            "file": self.file_name(name),
            "inputs": [describe(*item) for item in zip(self.input_names, self.args, self.dynamic_shapes, strict=True)],
            "outputs": [describe(value, tensor, output_dims(tensor)) for value, tensor in zip(self.output_names, outputs, strict=True)],
        }

    def runner(self) -> "_ModuleRunner":
        return _ModuleRunner(self.module, self.input_names)

    def lower(self, calibration: list[dict] | None) -> bytes:
        """The program, lowered to XNNPACK; int8 (PT2E) when `calibration` feeds are given."""
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower

        program = torch.export.export(self.module, self.args, dynamic_shapes=self.dynamic_shapes, strict=False)
        if calibration is not None:
            program = self._quantized(program, calibration)
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        # The view-copy pass refuses a static view of a dynamic base (the memory encoder's object axis).
        return lowered.to_executorch(ExecutorchBackendConfig(remove_view_copy=False)).buffer

    def _quantized(self, program, calibration: list[dict]):
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(program.module(), quantizer)
        for feeds in calibration:
            prepared(*_tensors(feeds, self.input_names))
        converted = convert_pt2e(prepared)
        return torch.export.export(converted, self.args, dynamic_shapes=self.dynamic_shapes, strict=False)


class _ModuleRunner:
    """An eager graph module behind onnxruntime's `run(None, feeds)`, to calibrate on."""

    def __init__(self, module, input_names):
        self.module, self.input_names = module, input_names

    def run(self, output_names, feeds: dict) -> list[np.ndarray]:
        with torch.no_grad():
            return [output.numpy() for output in _as_tuple(self.module(*_tensors(feeds, self.input_names)))]


def _as_tuple(outputs) -> tuple:
    """A graph with one output (the memory encoder's) returns the tensor itself."""
    return outputs if isinstance(outputs, (tuple, list)) else (outputs,)


def _tensors(feeds: dict, names: list[str]) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in names]


def _bounded(dynamic_shapes) -> tuple:
    """The dynamic shapes of a graph with an upper bound on every dynamic axis (ExecuTorch plans
    memory for it); one `Dim` per name, so that inputs sharing an axis keep sharing it."""
    limits = {"num_objects": MAX_OBJECTS, "num_points": MAX_POINTS}
    dims = {}

    def bound(dim):
        if dim.__name__ not in dims:
            dims[dim.__name__] = torch.export.Dim(dim.__name__, min=dim.min, max=max(limits[dim.__name__], dim.min))
        return dims[dim.__name__]

    # The image encoder's batch axis is left static: the runtimes encode one frame at a time.
    return tuple(
        {axis: bound(dim) for axis, dim in shapes.items() if dim.__name__ in limits} if shapes else shapes
        for shapes in dynamic_shapes
    )
