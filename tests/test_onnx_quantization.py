"""`edgetam-hf export --quantize int8` on the bundled trained tiny video model: the manifest records
each graph's precision, the predictor and the tracker run the mixed folder unchanged, and its masks
stay within a measured distance of the float32 PyTorch model's.

Bound (measured, with margin; int8 approximates, so it is an accuracy bound, not a float tolerance):
on 30 held-out scenes (a click and a box per object) the int8 image path's masks have a mean IoU of
0.85 with the float32 build's (which equals PyTorch float32 to 1e-4); on the test's 6 scenes 0.91,
which must stay at least 0.75.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import edgetam_hf
from edgetam_hf.cli import main
from edgetam_hf.onnx import OnnxImagePredictor, OnnxVideoTracker, read_manifest
from edgetam_hf.onnx.manifest import graph_precision
from edgetam_hf.onnx.quantization import DEFAULT_INT8_GRAPHS, calibration_frames, quantize_export

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

BUNDLED = Path(edgetam_hf.__file__).parent  # the trained tiny models, in the source tree
HELD_OUT_SEED = 1_000_003  # scripts/train_tiny_model.py's held-out scenes
HELD_OUT_SCENES = 6
MIN_MEAN_MASK_IOU = 0.75


@pytest.fixture(scope="module")
def int8_folder(tmp_path_factory):
    """The command line's int8 export of the tiny video model (the slow step)."""
    out = tmp_path_factory.mktemp("exports") / "tiny-int8"
    torch.set_num_threads(1)
    assert main(["export", str(BUNDLED / "tiny_video_model"), "--format", "onnx", "--quantize", "int8", "--out", str(out)]) == 0
    return out


def test_manifest_records_each_graphs_precision(int8_folder):
    manifest = read_manifest(int8_folder, video=True)
    assert manifest["dtype"] == "float32"  # every graph's inputs and outputs
    for name in manifest["graphs"]:
        assert graph_precision(manifest, name) == ("int8" if name in DEFAULT_INT8_GRAPHS else "float32"), name
    assert manifest["quantization"]["calibration_frames"] > 0


def test_int8_image_masks_agree_with_float32_pytorch(int8_folder):
    """The held-out protocol of the tiny model's training report: one click at each object's most
    interior pixel (the output the IoU head picks) and its box (one output)."""
    from edgetam_hf import EdgeTamModel, EdgeTamProcessor
    from edgetam_hf.cli.models import processor_for
    from edgetam_hf.training.evaluation import interior_click
    from edgetam_hf.training.shapes import render_shapes_scene

    model = EdgeTamModel.from_pretrained(str(BUNDLED / "tiny_model")).eval()
    processor = processor_for(EdgeTamProcessor, model)
    predictor = OnnxImagePredictor(int8_folder)
    rng = np.random.default_rng(HELD_OUT_SEED)
    ious = []
    for _ in range(HELD_OUT_SCENES):
        image, masks = render_shapes_scene(rng, (640, 480))
        clicks = [[list(interior_click(mask))] for mask in masks]
        boxes = [[float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())] for ys, xs in map(np.nonzero, masks)]
        encoded = predictor.encode_image(image)
        clicked = predictor.predict(encoded, input_points=clicks)
        ours = [*clicked.masks[np.arange(len(masks)), clicked.iou_scores.argmax(-1)], *predictor.predict(encoded, input_boxes=boxes, multimask_output=False).masks[:, 0]]
        with torch.no_grad():
            inputs = processor(images=image, input_points=[clicks], input_labels=[[[1]] * len(clicks)])
            outputs = model(**inputs)
            chosen = outputs.pred_masks[0, np.arange(len(masks)), outputs.iou_scores[0].argmax(-1)]
            box_inputs = processor(original_sizes=inputs["original_sizes"], input_boxes=[boxes])
            boxed = model(image_embeddings=outputs.image_embeddings, input_boxes=box_inputs["input_boxes"], multimask_output=False)
        expected = [
            *processor.post_process_masks(chosen[None, :, None], inputs["original_sizes"])[0][:, 0].numpy(),
            *processor.post_process_masks(boxed.pred_masks, inputs["original_sizes"])[0][:, 0].numpy(),
        ]
        for a, b in zip(ours, expected, strict=True):
            union = np.logical_or(a, b).sum()
            ious.append(np.logical_and(a, b).sum() / union if union else 1.0)
    print(f"mean IoU of int8 and float32 masks: {np.mean(ious):.4f} over {len(ious)} masks")
    assert np.mean(ious) >= MIN_MEAN_MASK_IOU


def test_tracker_runs_the_mixed_folder(int8_folder):
    """Unchanged tracker code on int8 image and memory encoders and a float32 tracking step; how far
    its masks are from float32 is benchmarks/ondevice_accuracy.py's J&F (docs/export.md)."""
    from edgetam_hf.sample_media import SAMPLE_BOXES, render_sample_clip

    tracker = OnnxVideoTracker(int8_folder, render_sample_clip(4), memory_dtype="float32")
    for obj_id, box in enumerate(SAMPLE_BOXES, start=1):
        tracker.add_prompt(0, obj_id, box=list(box))
    frames = list(tracker.propagate())
    assert [frame.frame_idx for frame in frames] == [0, 1, 2, 3]
    for frame in frames:
        assert np.isfinite(frame.mask_logits).all()
        assert tracker.masks(frame).shape == (len(SAMPLE_BOXES), *tracker.video_size)
    assert tracker.masks(frames[0]).any(axis=(1, 2)).all()  # every boxed object found on its prompted frame


def test_calibration_folder_is_read_in_order(tmp_path):
    for index, value in enumerate((30, 10, 20)):
        Image.fromarray(np.full((8, 12, 3), value, dtype=np.uint8)).save(tmp_path / f"{index:05d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    frames = calibration_frames(tmp_path)
    assert [int(frame[0, 0, 0]) for frame in frames] == [30, 10, 20]
    assert len(calibration_frames(None, count=5)) == 5  # rendered clips by default


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--quantize", "int8", "--dtype", "float16"], "leave out --dtype float16"),
        (["--calibration", "frames"], "--calibration needs --quantize int8"),
        (["--quantize", "int8", "--calibration", "no-such-folder"], "is not a folder of frames"),
    ],
)
def test_bad_quantization_arguments_are_refused_before_exporting(arguments, message, tmp_path, capsys):
    assert main(["export", str(BUNDLED / "tiny_video_model"), "--out", str(tmp_path / "out"), *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_quantizing_a_float16_folder_is_refused(tmp_path):
    graphs = {name: {"file": f"{name}.onnx"} for name in ("image_encoder", "prompt_mask_decoder")}
    for graph in graphs.values():
        (tmp_path / graph["file"]).write_bytes(b"")
    manifest = {"format": "edgetam-hf-onnx", "format_version": 1, "dtype": "float16", "graphs": graphs}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="int8 is made from a float32 export"):
        quantize_export(tmp_path, [], ["image_encoder"])
