"""The manifest of an export folder: which graph is in which file, what each takes and returns.

Written by `edgetam_hf.onnx.export` (or `edgetam_hf.executorch.export`) next to the graphs, read by
the runtime; the standard library only, so that reading it needs no torch (`open_graph` imports the
folder's runtime when called).
"""

import json
from pathlib import Path

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "edgetam-hf-onnx"
FORMAT_VERSION = 1
IMAGE_ENCODER = "image_encoder"
PROMPT_MASK_DECODER = "prompt_mask_decoder"
MEMORY_ENCODER = "memory_encoder"
TRACKING_STEP = "tracking_step"
# Exports made before mask prompts were supported lack this graph; the tracker asks for it only
# when given a mask prompt, so it is not among the required names.
MASK_PROMPT = "mask_prompt"
GRAPH_NAMES = (IMAGE_ENCODER, PROMPT_MASK_DECODER)
# A folder of ExecuTorch programs says so; the others are onnxruntime's (no "runtime" key).
EXECUTORCH_RUNTIME = "executorch"
VIDEO_GRAPH_NAMES = (MEMORY_ENCODER, TRACKING_STEP)


def is_export_folder(path) -> bool:
    """True for a folder that holds an export manifest (what `edgetam-hf export` writes)."""
    return Path(path).expanduser().is_dir() and (Path(path).expanduser() / MANIFEST_NAME).is_file()


def read_manifest(folder, video: bool = False) -> dict:
    """The manifest of an export folder, checked; a ValueError names what is missing or unknown.
    `video` also requires the video graphs (an export of a video model)."""
    folder = Path(folder).expanduser()
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(f"{folder} is not an ONNX export folder: it has no {MANIFEST_NAME} (make one with edgetam-hf export)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not an {FORMAT_NAME} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {manifest.get('format_version')!r}; this edgetam-hf reads version {FORMAT_VERSION}"
        )
    if video and "video" not in manifest:
        raise ValueError(f"{folder} holds the image graphs only: export a video model (Meta's checkpoint or a video folder) to track")
    for name in GRAPH_NAMES + (VIDEO_GRAPH_NAMES if video else ()):
        graph = manifest.get("graphs", {}).get(name)
        if not isinstance(graph, dict) or not (folder / str(graph.get("file"))).is_file():
            raise ValueError(f"{folder}: the manifest names no readable file for the {name} graph")
    return manifest


def graph_precision(manifest: dict, name: str) -> str:
    """The arithmetic of graph `name`: "int8" for a quantized graph (inputs and outputs stay in the
    manifest's `dtype`), else the export's dtype (folders from before quantization record none)."""
    return manifest["graphs"][name].get("precision", manifest["dtype"])


def describe_precision(folder) -> str:
    """One line: the export's dtype, or each graph's precision when they differ."""
    manifest = read_manifest(folder)
    precisions = {name: graph_precision(manifest, name) for name in manifest["graphs"]}
    if set(precisions.values()) == {manifest["dtype"]}:
        return manifest["dtype"]
    return ", ".join(f"{name} {precision}" for name, precision in precisions.items())


def open_graph(folder, manifest: dict, name: str, providers=None, session_options=None):
    """Graph `name` of an export folder, ready to `run(None, feeds)`: an onnxruntime session, or
    for an ExecuTorch folder (`"runtime": "executorch"`) its program behind the same call."""
    path = Path(folder).expanduser() / manifest["graphs"][name]["file"]
    if manifest.get("runtime") == EXECUTORCH_RUNTIME:
        from ..executorch.runtime import ExecuTorchGraph

        return ExecuTorchGraph(path, manifest["graphs"][name])
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), sess_options=session_options, providers=providers or ["CPUExecutionProvider"])
