"""The exported video graphs and `OnnxVideoTracker` on the tiny video model, against our PyTorch
session (fp32 model): every output of a multi-object clip with objects prompted on different
frames, a box, a correction click and reverse tracking; the NumPy parts (hole filling, memory
selection, frame preprocessing) against their torch counterparts; streaming in bounded memory.

Tolerance: the graphs run the same float32 operations through onnxruntime's kernels, so logits
agree to float rounding, `edgetam_hf.numerics` (1e-4 plus a share of the largest logit); mask bits
may differ only where the logit lies within that of 0. Memories are compared stored in float32
(in bfloat16, one rounding step taken the other way moves later frames by ~1e-3).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from _video_tiny import NUM_FRAMES, object_centre, tiny_model, tiny_processor, video_frames
from edgetam_hf.numerics import LOGIT_ABSOLUTE, RELATIVE_TO_LARGEST
from edgetam_hf.onnx.export import export_onnx

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

FILL_HOLE_AREA = 8  # the released value: the tracker's NumPy hole filling is exercised


@pytest.fixture(scope="module")
def model():
    return tiny_model(fill_hole_area=FILL_HOLE_AREA)


@pytest.fixture(scope="module")
def export_folder(model, tmp_path_factory):
    """The tiny video model exported once for the module (the slow step)."""
    return export_onnx(model, tmp_path_factory.mktemp("exports") / "tiny-video-onnx")


def _tracker(export_folder, **kwargs):
    from edgetam_hf.onnx import OnnxVideoTracker

    return OnnxVideoTracker(export_folder, video_frames(), memory_dtype="float32", **kwargs)


def _scenario():
    """(op, arguments) steps: two objects on frame 0 (a click, a box), a third on frame 2,
    tracking, a correction click on frame 3, tracking again, then backwards from frame 4."""
    box = [object_centre(2, 0)[0] - 10, object_centre(2, 0)[1] - 10, object_centre(2, 0)[0] + 10, object_centre(2, 0)[1] + 10]
    return [
        ("add", dict(frame_idx=0, obj_id=1, points=[object_centre(1, 0)], labels=[1])),
        ("add", dict(frame_idx=0, obj_id=2, box=box)),
        ("add", dict(frame_idx=2, obj_id=3, points=[object_centre(3, 2)], labels=[1])),
        ("propagate", dict()),
        ("add", dict(frame_idx=3, obj_id=1, points=[object_centre(1, 3), [5.0, 5.0]], labels=[1, 0])),
        ("propagate", dict()),
        ("propagate", dict(start_frame_idx=NUM_FRAMES - 1, reverse=True)),
    ]


def _pytorch_outputs(model, steps):
    processor = tiny_processor()
    session = processor.init_video_session(video=video_frames(), memory_dtype=torch.float32)
    outputs = []
    with torch.no_grad():
        for op, arguments in steps:
            if op == "add":
                arguments = dict(arguments)
                frame_idx, obj_id = arguments.pop("frame_idx"), arguments.pop("obj_id")
                prompt = {}
                if "points" in arguments:
                    prompt = dict(input_points=[[arguments["points"]]], input_labels=[[arguments["labels"]]])
                if "box" in arguments:
                    prompt["input_boxes"] = [[arguments["box"]]]
                processor.add_inputs_to_inference_session(session, frame_idx, obj_id, **prompt)
                outputs.append(model(session, frame_idx=frame_idx))
            else:
                outputs.extend(model.propagate_in_video_iterator(session, **arguments))
    return outputs, processor


def _onnx_outputs(tracker, steps):
    outputs = []
    for op, arguments in steps:
        if op == "add":
            outputs.append(tracker.add_prompt(**arguments))
        else:
            outputs.extend(tracker.propagate(**arguments))
    return outputs


def test_tracker_matches_the_pytorch_session_on_every_frame(model, export_folder):
    steps = _scenario()
    expected, processor = _pytorch_outputs(model, steps)
    tracker = _tracker(export_folder)
    ours = _onnx_outputs(tracker, steps)
    assert [o.frame_idx for o in ours] == [o.frame_idx for o in expected]
    video_size = tracker.video_size
    worst = 0.0
    for step, (mine, reference) in enumerate(zip(ours, expected)):
        assert mine.object_ids == reference.object_ids, step
        reference_logits = reference.pred_masks.numpy()
        tolerance = LOGIT_ABSOLUTE + RELATIVE_TO_LARGEST * np.abs(reference_logits).max(axis=(1, 2, 3), keepdims=True)
        difference = np.abs(mine.mask_logits - reference_logits).max(axis=(1, 2, 3), keepdims=True)
        worst = max(worst, float((difference / tolerance).max()))
        assert (difference <= tolerance).all(), f"step {step} (frame {mine.frame_idx}): logits differ by {difference.max():.3g}"
        assert np.abs(mine.object_score_logits - reference.object_score_logits.numpy()).max() <= LOGIT_ABSOLUTE
        reference_video_logits = processor.post_process_masks([reference.pred_masks], [list(video_size)], binarize=False)[0]
        reference_video_logits = reference_video_logits[:, 0].numpy()
        decided = np.abs(reference_video_logits) > tolerance[:, 0]
        assert np.array_equal(tracker.masks(mine)[decided], (reference_video_logits > 0)[decided]), step
    print(f"worst logit difference: {worst:.3f} of the tolerance over {len(ours)} outputs")


def test_streamed_frames_in_bounded_memory_give_the_same_masks(model, export_folder):
    """Frames added one at a time, tracked as they come, with one frame's features and the
    memory window's results kept: the same outputs as the tracker given the whole video."""
    from edgetam_hf.onnx import OnnxVideoTracker

    clip = video_frames() * 2  # longer than the memory window, so that old results are dropped
    whole = OnnxVideoTracker(export_folder, clip, memory_dtype="float32")
    whole.add_prompt(0, 1, points=[object_centre(1, 0)])
    expected = list(whole.propagate())
    window = max(model.config.num_maskmem, model.config.max_object_pointers_in_encoder)
    streamed = OnnxVideoTracker(export_folder, memory_dtype="float32", max_stored_frames=window)
    outputs = []
    for frame_idx, frame in enumerate(clip):
        assert streamed.add_frame(frame) == frame_idx
        if frame_idx == 0:
            streamed.add_prompt(0, 1, points=[object_centre(1, 0)])
        outputs.append(streamed.track(frame_idx))
        assert all(len(tracked.results[False]) <= window + 1 for tracked in streamed._objects.values())
    assert len(streamed._features) == 1
    assert len(outputs) == len(expected) == len(clip)
    for mine, reference in zip(outputs, expected):
        np.testing.assert_allclose(mine.mask_logits, reference.mask_logits, rtol=0, atol=LOGIT_ABSOLUTE)


def test_bfloat16_memories_match_the_default_pytorch_session(model, export_folder):
    """With memories stored in bfloat16 on both sides (the default), the masks agree (a rounding
    step taken the other way moves a logit by ~1e-3, far below what flips a decided pixel)."""
    from edgetam_hf.onnx import OnnxVideoTracker

    processor = tiny_processor()
    session = processor.init_video_session(video=video_frames())
    processor.add_inputs_to_inference_session(session, 0, 1, input_points=[[[object_centre(1, 0)]]], input_labels=[[[1]]])
    with torch.no_grad():
        model(session, frame_idx=0)
        expected = list(model.propagate_in_video_iterator(session))
    tracker = OnnxVideoTracker(export_folder, video_frames())
    tracker.add_prompt(0, 1, points=[object_centre(1, 0)])
    for mine, reference in zip(tracker.propagate(), expected):
        assert np.abs(mine.mask_logits - reference.pred_masks.numpy()).max() <= 1e-2
        assert ((mine.mask_logits > 0) != (reference.pred_masks.numpy() > 0)).mean() <= 1e-3


def test_hole_filling_in_numpy_matches_torch():
    from edgetam_hf.onnx.hole_filling import fill_holes as fill_holes_numpy
    from edgetam_hf.video.hole_filling import fill_holes

    rng = np.random.default_rng(0)
    logits = rng.normal(0.8, 1.0, size=(3, 1, 40, 48)).astype(np.float32)  # many small background specks
    for max_area in (1, 4, 8):
        expected = fill_holes(torch.from_numpy(logits), max_area).numpy()
        np.testing.assert_array_equal(fill_holes_numpy(logits, max_area), expected)


def test_manifest_lists_the_video_graphs(export_folder):
    from edgetam_hf.onnx import read_manifest

    manifest = read_manifest(export_folder, video=True)
    step = {value["name"]: value["shape"] for value in manifest["graphs"]["tracking_step"]["inputs"]}
    assert step["memory_tokens"][0] == "num_objects" and step["point_coords"][:2] == ["num_objects", "num_points"]
    assert step["memory_valid"][1] == step["memory_tokens"][1] == tiny_model().config.num_maskmem + 1
    memory = manifest["graphs"]["memory_encoder"]
    assert memory["outputs"][0]["shape"][0] == "num_objects"
    assert manifest["video"]["fill_hole_area"] == FILL_HOLE_AREA


def test_too_many_prompted_frames_for_the_slots_is_a_clear_error(export_folder):
    from edgetam_hf.onnx import OnnxVideoTracker

    tracker = OnnxVideoTracker(export_folder, video_frames() * 2)
    for frame_idx in (0, 1, 2):  # three conditioning frames; the export has room for two besides the recent frames
        tracker.add_prompt(frame_idx, 1, points=[object_centre(1, frame_idx)])
    with pytest.raises(ValueError, match="extra_conditioning_slots"):
        list(tracker.propagate())


def test_track_command_on_the_export_writes_the_pytorch_files(model, export_folder, tmp_path):
    from PIL import Image

    from edgetam_hf.cli import main

    model_folder = tmp_path / "model"
    model.save_pretrained(model_folder)
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for index, frame in enumerate(video_frames()):
        Image.fromarray(frame).save(frames_dir / f"{index:05d}.png")
    x, y = object_centre(1, 0)
    prompts = ["--frame", "0", "--object", "1", "--point", f"{x:.0f},{y:.0f}", "--object", "2", "--box", "76,21,104,49"]
    for name, source in (("torch", model_folder), ("onnx", export_folder)):
        assert main(["track", str(frames_dir), *prompts, "--model", str(source), "--device", "cpu", "--out", str(tmp_path / name)]) == 0
    masks = sorted(path.name for path in (tmp_path / "torch").glob("*.png"))
    assert masks == sorted(path.name for path in (tmp_path / "onnx").glob("*.png")) and len(masks) == NUM_FRAMES
    for name in masks:
        expected = np.asarray(Image.open(tmp_path / "torch" / name))
        ours = np.asarray(Image.open(tmp_path / "onnx" / name))
        assert (expected != ours).mean() <= 1e-4  # <= 0.01 % of the pixels
    scores = [json.loads((tmp_path / name / "scores.json").read_text()) for name in ("torch", "onnx")]
    assert [f["areas"] for f in scores[0]["frames"]] == [f["areas"] for f in scores[1]["frames"]]


def test_tracker_runs_without_torch(export_folder, tmp_path):
    np.save(tmp_path / "frames.npy", np.stack(video_frames()))
    script = (
        "import sys\n"
        "sys.modules['torch'] = sys.modules['transformers'] = None  # any import of them fails\n"
        "import numpy as np\n"
        "from edgetam_hf.onnx import OnnxVideoTracker\n"
        f"tracker = OnnxVideoTracker({str(export_folder)!r}, list(np.load({str(tmp_path / 'frames.npy')!r})))\n"
        f"tracker.add_prompt(0, 1, points=[{object_centre(1, 0)}])\n"
        "print(sum(int(tracker.masks(frame).sum()) for frame in tracker.propagate()))\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert int(completed.stdout) > 0
