"""Static int8 (QDQ) quantization of an export folder: `edgetam-hf export MODEL --format onnx --quantize int8`.

Weights are int8 per output channel; activations int8 per tensor, their ranges calibrated by running
the float32 graphs on frames (rendered clips of moving shapes by default, or a folder of the user's
frames). Quantize / dequantize pairs (QDQ) keep every graph's inputs and outputs float32, so the
predictor and the tracker run a mixed folder unchanged; `manifest.json` records each graph's
`precision`.

Which graphs are quantized by default is measured, not guessed (docs/export.md, "int8"): the image
encoder, the prompt encoder + mask decoder and the memory encoder; the tracking step (memory
attention) stays float32: in int8 it loses the objects. Needs `onnxruntime` (its quantization
tools) and NumPy only.
"""

import json
import os
from pathlib import Path

import numpy as np

from .image_ops import pixel_values_from_image
from .manifest import (
    IMAGE_ENCODER,
    MANIFEST_NAME,
    MEMORY_ENCODER,
    PROMPT_MASK_DECODER,
    TRACKING_STEP,
    open_graph,
    read_manifest,
)
from .staging import staged_folder


QUANTIZABLE_GRAPHS = (IMAGE_ENCODER, PROMPT_MASK_DECODER, MEMORY_ENCODER, TRACKING_STEP)
# Measured on the trained tiny video model (docs/export.md, "int8"): int8 tracking step J&F 3.4
# against float32's 18.1 (every object lost), int8 memory encoder 18.1 (masks at IoU 0.99998).
DEFAULT_INT8_GRAPHS = (IMAGE_ENCODER, PROMPT_MASK_DECODER, MEMORY_ENCODER)
CALIBRATION_FRAMES = 16
# Not the seeds of the held-out scenes and clips the accuracy figures are measured on.
CALIBRATION_SEED = 2718
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def calibration_frames(folder=None, count: int = CALIBRATION_FRAMES) -> list[np.ndarray]:
    """(H, W, 3) uint8 frames to calibrate on, in order (the tracking step is calibrated along them
    as a clip): the first `count` images of `folder` by name, or, without one, rendered clips of
    moving shapes (`edgetam_hf.training.shapes`, a seed of their own)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 2:
        raise ValueError(f"count must be an int >= 2 (the tracking step needs a previous frame), got {count!r}")
    from PIL import Image

    if folder is None:
        from ..training.shapes import render_shapes_clip

        rng = np.random.default_rng(CALIBRATION_SEED)
        frames = []
        while len(frames) < count:
            clip, _ = render_shapes_clip(rng, (640, 480), min(8, count - len(frames)))
            frames.extend(np.asarray(frame) for frame in clip)
        return frames
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"calibration: {folder} is not a folder of frames")
    paths = sorted(path for path in folder.iterdir() if path.suffix.lower() in _IMAGE_SUFFIXES)[:count]
    if len(paths) < 2:
        raise ValueError(f"calibration: {folder} holds {len(paths)} images ({', '.join(_IMAGE_SUFFIXES)}); at least 2 are needed")
    return [np.asarray(Image.open(path).convert("RGB")) for path in paths]


def quantize_export(folder, frames, graphs=None) -> dict[str, str]:
    """Quantizes `graphs` of a float32 export `folder` in place, calibrated on `frames`; returns every
    graph's precision as written to the manifest. The other graphs stay as exported. `graphs`
    defaults to those of `DEFAULT_INT8_GRAPHS` the folder has (an image-only export has no memory encoder).

    Raises:
        ValueError: a float16 folder (int8 is calibrated from float32 graphs), an unknown graph
            name, or a video graph asked of an image-only folder.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    folder = Path(folder).expanduser()
    manifest = read_manifest(folder)
    if manifest["dtype"] != "float32":
        raise ValueError(f"{folder} is a {manifest['dtype']} export; int8 is made from a float32 export")
    if graphs is None:
        graphs = [name for name in DEFAULT_INT8_GRAPHS if name in manifest["graphs"]]
    unknown = sorted(set(graphs) - set(QUANTIZABLE_GRAPHS))
    if unknown:
        raise ValueError(f"graphs: {unknown} cannot be quantized; choose among {list(QUANTIZABLE_GRAPHS)}")
    missing = [name for name in graphs if name not in manifest["graphs"]]
    if missing:
        raise ValueError(f"graphs: {folder} has no {', '.join(missing)} graph (an image-only export?)")
    sessions = {name: open_graph(folder, manifest, name) for name in manifest["graphs"] if name in QUANTIZABLE_GRAPHS}
    feeds = calibration_feeds(sessions, manifest, frames, graphs)
    for name in graphs:
        path = folder / manifest["graphs"][name]["file"]
        prepared = path.with_suffix(".prepared.onnx")
        # Shape inference and constant folding first, as onnxruntime advises: the quantizer
        # then sees every tensor's shape and the weights as initializers.
        quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(path),
            _FeedReader(feeds[name]),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            # Activations with a zero point: many are one-sided (after a GELU or ReLU), and a
            # symmetric range would waste half of the 256 steps on them.
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        os.remove(prepared)
    precisions = {name: ("int8" if name in graphs else manifest["dtype"]) for name in manifest["graphs"]}
    for name, precision in precisions.items():
        manifest["graphs"][name]["precision"] = precision
    manifest["quantization"] = {
        "scheme": "static int8 QDQ: weights per channel (symmetric), activations per tensor (MinMax)",
        "calibration_frames": len(frames),
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return precisions


def export_int8(model, out_dir, frames, graphs=None, **export_options) -> Path:
    """`export_onnx` in float32, then `quantize_export`: built in a temporary sibling of `out_dir`
    and renamed into place only when both succeeded (nothing is left behind otherwise). Needs torch."""
    from .export import export_onnx

    with staged_folder(out_dir) as staging:
        build = export_onnx(model, staging / "build", dtype="float32", **export_options)
        quantize_export(build, frames, graphs)
        for path in build.iterdir():  # the graphs and the manifest, into the folder renamed to out_dir
            path.rename(staging / path.name)
        build.rmdir()
    return Path(out_dir).expanduser()


class _FeedReader:
    """onnxruntime's CalibrationDataReader protocol over a list of input dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._feeds = iter(feeds)

    def get_next(self):
        return next(self._feeds, None)


def calibration_feeds(sessions: dict, manifest: dict, frames, graphs) -> dict[str, list[dict[str, np.ndarray]]]:
    """The float32 graphs `sessions` (name -> an object with onnxruntime's `run(None, feeds)`) run
    on `frames`: what each of `graphs` is fed, per graph name (the image graphs always run: the
    others are fed their outputs).

    Each frame is encoded; the decoder gets two objects (a click, a box; seeded positions); the
    memory encoder their masks; the tracking step follows them along the frames as a clip, its
    slots filled with the earlier frames' memories and pointers as the tracker fills them (the
    first frame prompted, the next ones tracked without a prompt).
    """
    preprocessing = manifest["preprocessing"]
    side = int(preprocessing["image_size"])
    mask_side = int(preprocessing["mask_size"])
    rng = np.random.default_rng(CALIBRATION_SEED)
    feeds = {name: [] for name in (IMAGE_ENCODER, PROMPT_MASK_DECODER, *graphs)}
    step = _StepWalk(manifest["graphs"][TRACKING_STEP], manifest["video"]) if TRACKING_STEP in graphs else None
    for frame in frames:
        pixel_values = pixel_values_from_image(frame, side, preprocessing["image_mean"], preprocessing["image_std"])
        feeds[IMAGE_ENCODER].append({"pixel_values": pixel_values})
        feat_s0, feat_s1, vision_features = sessions[IMAGE_ENCODER].run(None, {"pixel_values": pixel_values})
        features = {"vision_features": vision_features, "high_res_feat_s0": feat_s0, "high_res_feat_s1": feat_s1}
        x0, y0 = rng.uniform(0, 0.6 * side, 2)
        box_side = rng.uniform(0.1, 0.4) * side
        point_coords = np.array(
            [[[*rng.uniform(0, side, 2)], [0, 0], [0, 0]], [[x0, y0], [x0 + box_side, y0 + box_side], [0, 0]]], dtype=np.float32
        )
        point_labels = np.array([[1, -1, -1], [2, 3, -1]], dtype=np.int64)
        decoder_inputs = {
            **features,
            "point_coords": point_coords,
            "point_labels": point_labels,
            "mask_input": np.zeros((2, 1, mask_side, mask_side), dtype=np.float32),
            "has_mask_input": np.zeros(1, dtype=np.float32),
        }
        feeds[PROMPT_MASK_DECODER].append(decoder_inputs)
        _, _, single_logits, _, object_score_logits = sessions[PROMPT_MASK_DECODER].run(None, decoder_inputs)
        if MEMORY_ENCODER in graphs:
            memory_inputs = {"vision_features": vision_features, "mask_logits": single_logits, "object_score_logits": object_score_logits}
            feeds[MEMORY_ENCODER].append(memory_inputs)
        if step is not None:
            step_inputs = step.inputs(features, point_coords, point_labels, mask_side)
            feeds[TRACKING_STEP].append(step_inputs)
            step.record(*sessions[TRACKING_STEP].run(None, step_inputs))
    return feeds


class _StepWalk:
    """Slots for the tracking step along a clip: slot 0 the prompted first frame, the others the
    most recent frames (temporal positions 1 ..), as the tracker fills them for a plain track."""

    def __init__(self, graph: dict, settings: dict):
        shapes = {value["name"]: value["shape"] for value in graph["inputs"]}
        self.memory_shape = tuple(shapes["memory_tokens"][1:])  # (slots, tokens, memory_dim)
        self.pointer_shape = tuple(shapes["object_pointers"][1:])  # (slots, hidden)
        self.num_maskmem = int(settings["num_maskmem"])
        self.max_pointers = int(settings["max_object_pointers_in_encoder"])
        self.memories, self.pointers = [], []  # per frame so far: (2, T, D), (2, hidden)

    def inputs(self, features: dict, point_coords, point_labels, mask_side: int) -> dict[str, np.ndarray]:
        num_objects = point_coords.shape[0]
        memory_tokens = np.zeros((num_objects, *self.memory_shape), dtype=np.float32)
        object_pointers = np.zeros((num_objects, *self.pointer_shape), dtype=np.float32)
        temporal_slot = np.zeros(self.memory_shape[0], dtype=np.int64)
        pointer_position = np.zeros(self.pointer_shape[0], dtype=np.float32)
        memory_valid = np.zeros((num_objects, self.memory_shape[0]), dtype=bool)
        pointer_valid = np.zeros((num_objects, self.pointer_shape[0]), dtype=bool)
        if self.memories:
            recent = list(range(len(self.memories) - 1, 0, -1))[: self.num_maskmem - 1]
            for slot, frame in enumerate([0, *recent]):
                memory_tokens[:, slot] = self.memories[frame]
                temporal_slot[slot] = 0 if frame == 0 else len(self.memories) - frame
                memory_valid[:, slot] = True
            for slot, frame in enumerate([0, *list(range(len(self.pointers) - 1, 0, -1))[: self.pointer_shape[0] - 1]]):
                object_pointers[:, slot] = self.pointers[frame]
                pointer_position[slot] = (len(self.pointers) - frame) / max(self.max_pointers - 1, 1)
                pointer_valid[:, slot] = True
            # Tracked frames carry no prompt: a "not a point" token and the padding point.
            point_coords = np.zeros((num_objects, 2, 2), dtype=np.float32)
            point_labels = np.full((num_objects, 2), -1, dtype=np.int64)
        return {
            **features,
            "memory_tokens": memory_tokens,
            "memory_temporal_slot": temporal_slot,
            "memory_valid": memory_valid,
            "object_pointers": object_pointers,
            "pointer_temporal_position": pointer_position,
            "pointer_valid": pointer_valid,
            "point_coords": point_coords,
            "point_labels": point_labels,
            "mask_input": np.zeros((num_objects, 1, mask_side, mask_side), dtype=np.float32),
            "has_mask_input": np.zeros(1, dtype=np.float32),
            "multimask_output": np.ones(1, dtype=np.float32),
        }

    def record(self, mask_logits, object_pointer, object_score_logits, new_memory_tokens) -> None:
        self.memories.append(new_memory_tokens)
        self.pointers.append(object_pointer)
