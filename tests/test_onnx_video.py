"""The exported video graphs and `OnnxVideoTracker` on the tiny video model, against our PyTorch
session (fp32 model): every output of multi-object clips with objects prompted on different
frames, a box, correction clicks, clicks added to a frame's earlier ones, mask prompts (initial
and as a correction), removing an object and a frame's prompts, and reverse tracking; the NumPy
parts (hole filling, memory selection, frame preprocessing, mask resizing) against their torch
counterparts; streaming in bounded memory, also from the command line.

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

from _video_tiny import EXPORTED_FILL_HOLE_AREA, NUM_FRAMES, VIDEO_HEIGHT, VIDEO_WIDTH, object_centre, tiny_model, tiny_processor
from _video_tiny import long_clip, source_frame, video_frames
from edgetam_hf.numerics import LOGIT_ABSOLUTE, RELATIVE_TO_LARGEST

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def model():
    return tiny_model(fill_hole_area=EXPORTED_FILL_HOLE_AREA)


@pytest.fixture(scope="module")
def export_folder(tiny_video_export):
    """`model` exported (once for the test run)."""
    return tiny_video_export


def _tracker(export_folder, **kwargs):
    from edgetam_hf.onnx import OnnxVideoTracker

    return OnnxVideoTracker(export_folder, video_frames(), memory_dtype="float32", **kwargs)


def _box_around(obj: int, frame: int, half_side: float = 10.0) -> list[float]:
    x, y = object_centre(obj, frame)
    return [x - half_side, y - half_side, x + half_side, y + half_side]


def _ellipse_mask(obj: int, frame: int) -> np.ndarray:
    """(height, width) bool: a mask prompt around object `obj` on `frame`, a little off its edge."""
    yy, xx = np.mgrid[0:VIDEO_HEIGHT, 0:VIDEO_WIDTH]
    x, y = object_centre(obj, frame)
    return ((xx - x) / 13.5) ** 2 + ((yy - y) / 10.5) ** 2 <= 1


# (op, arguments) steps run on both sides. "add": a prompt and the call on its frame.
SCENARIOS = {
    # Two objects on frame 0 (a click, a box), a third on frame 2, tracking, a correction click on
    # frame 3, tracking again, then backwards from the last frame.
    "clicks_box_correction_reverse": [
        ("add", dict(frame_idx=0, obj_id=1, points=[object_centre(1, 0)], labels=[1])),
        ("add", dict(frame_idx=0, obj_id=2, box=_box_around(2, 0))),
        ("add", dict(frame_idx=2, obj_id=3, points=[object_centre(3, 2)], labels=[1])),
        ("propagate", dict()),
        ("add", dict(frame_idx=3, obj_id=1, points=[object_centre(1, 3), [5.0, 5.0]], labels=[1, 0])),
        ("propagate", dict()),
        ("propagate", dict(start_frame_idx=NUM_FRAMES - 1, reverse=True)),
    ],
    # Clicks added to a frame's earlier ones: on an initial frame (a box, then a click; a click,
    # then a negative one) and on a corrected frame.
    "clicks_added_to_earlier_ones": [
        ("add", dict(frame_idx=0, obj_id=1, points=[object_centre(1, 0)], labels=[1])),
        ("add", dict(frame_idx=0, obj_id=1, points=[[5.0, 5.0]], labels=[0], clear_old_inputs=False)),
        ("add", dict(frame_idx=0, obj_id=2, box=_box_around(2, 0))),
        ("add", dict(frame_idx=0, obj_id=2, points=[object_centre(2, 0)], labels=[1], clear_old_inputs=False)),
        ("propagate", dict()),
        ("add", dict(frame_idx=3, obj_id=1, points=[object_centre(1, 3)], labels=[1])),
        ("add", dict(frame_idx=3, obj_id=1, points=[[120.0, 90.0]], labels=[0], clear_old_inputs=False)),
        ("propagate", dict(start_frame_idx=3)),
    ],
    # Mask prompts: one object from a mask, another from a click, tracking, a mask as the
    # correction of a tracked frame, clicks replacing a mask, tracking again.
    "mask_prompts": [
        ("add", dict(frame_idx=0, obj_id=1, mask=_ellipse_mask(1, 0))),
        ("add", dict(frame_idx=0, obj_id=2, points=[object_centre(2, 0)], labels=[1])),
        ("propagate", dict()),
        ("add", dict(frame_idx=2, obj_id=2, mask=_ellipse_mask(2, 2))),
        ("add", dict(frame_idx=3, obj_id=1, mask=np.zeros((VIDEO_HEIGHT, VIDEO_WIDTH), dtype=bool))),  # gone
        ("propagate", dict()),
        ("add", dict(frame_idx=3, obj_id=1, points=[object_centre(1, 3)], labels=[1])),
        ("propagate", dict(start_frame_idx=3)),
    ],
    # Removing: a frame's prompts of one object (the frame stays a conditioning frame of the
    # other), then the prompts of the only object on a frame (it is tracked again), then an
    # object; tracking after each.
    "removing_prompts_and_objects": [
        ("add", dict(frame_idx=0, obj_id=1, points=[object_centre(1, 0)], labels=[1])),
        ("add", dict(frame_idx=0, obj_id=2, box=_box_around(2, 0))),
        ("add", dict(frame_idx=2, obj_id=3, points=[object_centre(3, 2)], labels=[1])),
        ("propagate", dict()),
        ("clear", dict(frame_idx=0, obj_id=2)),
        ("propagate", dict()),
        ("clear", dict(frame_idx=2, obj_id=3)),
        ("propagate", dict()),
        ("remove", dict(obj_id=1)),
        ("add", dict(frame_idx=1, obj_id=3, points=[object_centre(3, 1)], labels=[1])),
        ("propagate", dict()),
    ],
}


def _pytorch_outputs(model, steps):
    processor = tiny_processor()
    session = processor.init_video_session(video=video_frames(), memory_dtype=torch.float32)
    outputs = []
    with torch.no_grad():
        for op, arguments in steps:
            arguments = dict(arguments)
            if op == "add":
                frame_idx, obj_id = arguments.pop("frame_idx"), arguments.pop("obj_id")
                prompt = {"clear_old_inputs": arguments.get("clear_old_inputs", True)}
                if "points" in arguments:
                    prompt.update(input_points=[[arguments["points"]]], input_labels=[[arguments["labels"]]])
                if "box" in arguments:
                    prompt["input_boxes"] = [[arguments["box"]]]
                if "mask" in arguments:
                    prompt["input_masks"] = [arguments["mask"]]
                processor.add_inputs_to_inference_session(session, frame_idx, obj_id, **prompt)
                outputs.append(model(session, frame_idx=frame_idx))
            elif op == "clear":
                outputs.append(model.clear_prompts_in_frame(session, arguments["frame_idx"], arguments["obj_id"]))
            elif op == "remove":
                outputs.extend(model.remove_object(session, arguments["obj_id"]))
            else:
                outputs.extend(model.propagate_in_video_iterator(session, **arguments))
    return outputs, processor


def _onnx_outputs(tracker, steps):
    outputs = []
    for op, arguments in steps:
        if op == "add":
            outputs.append(tracker.add_prompt(**arguments))
        elif op == "clear":
            outputs.append(tracker.clear_prompts_in_frame(**arguments))
        elif op == "remove":
            outputs.extend(tracker.remove_object(**arguments))
        else:
            outputs.extend(tracker.propagate(**arguments))
    return outputs


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_tracker_matches_the_pytorch_session_on_every_frame(model, export_folder, scenario):
    steps = SCENARIOS[scenario]
    expected, processor = _pytorch_outputs(model, steps)
    tracker = _tracker(export_folder)
    ours = _onnx_outputs(tracker, steps)
    assert [o.frame_idx for o in ours] == [o.frame_idx for o in expected]
    video_size = tracker.video_size
    worst = worst_absolute = 0.0
    for step, (mine, reference) in enumerate(zip(ours, expected, strict=True)):
        assert mine.object_ids == reference.object_ids, step
        reference_logits = reference.pred_masks.numpy()
        tolerance = LOGIT_ABSOLUTE + RELATIVE_TO_LARGEST * np.abs(reference_logits).max(axis=(1, 2, 3), keepdims=True)
        difference = np.abs(mine.mask_logits - reference_logits).max(axis=(1, 2, 3), keepdims=True)
        worst = max(worst, float((difference / tolerance).max()))
        worst_absolute = max(worst_absolute, float(difference.max()))
        assert (difference <= tolerance).all(), f"step {step} (frame {mine.frame_idx}): logits differ by {difference.max():.3g}"
        assert np.abs(mine.object_score_logits - reference.object_score_logits[:, 0].numpy()).max() <= LOGIT_ABSOLUTE
        reference_video_logits = processor.post_process_masks([reference.pred_masks], [list(video_size)], binarize=False)[0]
        reference_video_logits = reference_video_logits[:, 0].numpy()
        decided = np.abs(reference_video_logits) > tolerance[:, 0]
        assert np.array_equal(tracker.masks(mine)[decided], (reference_video_logits > 0)[decided]), step
    print(f"{scenario}: worst logit difference {worst_absolute:.3g} ({worst:.3f} of the tolerance) over {len(ours)} outputs")


def test_streamed_frames_in_bounded_memory_give_the_same_masks(model, export_folder):
    """Frames added one at a time, tracked as they come, with one frame's features and the
    memory window's results kept: the same outputs as the tracker given the whole video."""
    from edgetam_hf.onnx import OnnxVideoTracker

    clip = video_frames() * 2  # longer than the memory window, so that old results are dropped
    whole = OnnxVideoTracker(export_folder, clip, memory_dtype="float32")
    whole.add_prompt(0, 1, points=[object_centre(1, 0)])
    expected = list(whole.propagate())
    streamed = OnnxVideoTracker(export_folder, memory_dtype="float32", max_stored_frames=whole.memory_window)
    window = streamed.memory_window
    outputs = []
    for frame_idx, frame in enumerate(clip):
        assert streamed.add_frame(frame) == frame_idx
        if frame_idx == 0:
            streamed.add_prompt(0, 1, points=[object_centre(1, 0)])
        outputs.append(streamed.track(frame_idx))
        # the newest frame, the window behind it and the window after the prompted frame
        assert all(len(tracked.results.tracked) <= 2 * window + 1 for tracked in streamed._state.objects.values())
        assert streamed._frames.num_stored_frames <= 2  # the newest frame and the prompted one
    assert streamed._frames.num_cached_features == 1
    assert len(outputs) == len(expected) == len(clip)
    for mine, reference in zip(outputs, expected, strict=True):
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
    for mine, reference in zip(tracker.propagate(), expected, strict=True):
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
    assert manifest["video"]["fill_hole_area"] == EXPORTED_FILL_HOLE_AREA


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
    frames_dir = _frame_folder(tmp_path)
    x, y = object_centre(1, 0)
    prompts = ["--frame", "0", "--object", "1", "--point", f"{x:.0f},{y:.0f}", "--object", "2", "--box", "76,21,104,49"]
    for name, source in (("torch", model_folder), ("onnx", export_folder)):
        # float32: the graphs' precision (the default, auto, is bfloat16 where the CPU has it)
        assert main(["track", str(frames_dir), *prompts, "--model", str(source), "--device", "cpu", "--dtype", "float32",
                     "--out", str(tmp_path / name)]) == 0
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


def _frame_folder(tmp_path) -> Path:
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(video_frames()):
        Image.fromarray(frame).save(folder / f"{index:05d}.png")
    return folder


def test_track_stream_on_the_export_writes_the_pytorch_stream_files(model, export_folder, tmp_path):
    """`track --stream` with an export folder: objects prompted on the first frame and on a later
    one, frames added one at a time to a bounded streaming tracker; the PyTorch stream's files."""
    from PIL import Image

    from edgetam_hf.cli import main

    model_folder = tmp_path / "model"
    model.save_pretrained(model_folder)
    frames_dir = _frame_folder(tmp_path)
    (x1, y1), (x3, y3) = object_centre(1, 0), object_centre(3, 2)
    prompts = ["--frame", "0", "--object", "1", "--point", f"{x1:.0f},{y1:.0f}", "--object", "2", "--box", "76,21,104,49",
               "--frame", "2", "--object", "3", "--point", f"{x3:.0f},{y3:.0f}"]
    for name, source in (("torch", model_folder), ("onnx", export_folder)):
        argv = ["track", str(frames_dir), "--stream", *prompts, "--model", str(source), "--device", "cpu", "--dtype", "float32",
                "--out", str(tmp_path / name)]
        assert main(argv) == 0
    masks = sorted(path.name for path in (tmp_path / "torch").glob("0*.png"))
    assert masks == sorted(path.name for path in (tmp_path / "onnx").glob("0*.png")) and len(masks) == NUM_FRAMES
    for name in masks:
        expected = np.asarray(Image.open(tmp_path / "torch" / name))
        ours = np.asarray(Image.open(tmp_path / "onnx" / name))
        assert (expected != ours).mean() <= 1e-4, name  # <= 0.01 % of the pixels
    scores = [json.loads((tmp_path / name / "scores.json").read_text()) for name in ("torch", "onnx")]
    assert [f["areas"] for f in scores[0]["frames"]] == [f["areas"] for f in scores[1]["frames"]]
    assert scores[1]["backend"] == "onnxruntime" and scores[1]["objects"] == [1, 2, 3]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(points=[[10, 10]], mask=np.ones((VIDEO_HEIGHT, VIDEO_WIDTH), dtype=bool)), "mask cannot be given together"),
        (dict(box=[1, 1, 20, 20], clear_old_inputs=False), "box needs clear_old_inputs=True"),
        (dict(mask=np.ones((VIDEO_HEIGHT, VIDEO_WIDTH + 1), dtype=bool)), r"mask must be a \(height, width\)"),
        (dict(mask=np.ones((VIDEO_HEIGHT, VIDEO_WIDTH), dtype=bool), clear_old_inputs=False), "would mix masks and points"),
        (dict(), "give points and / or a box, or a mask"),
    ],
)
def test_bad_prompts_are_named(export_folder, arguments, message):
    tracker = _tracker(export_folder)
    tracker.add_prompt(0, 1, points=[object_centre(1, 0)])
    with pytest.raises(ValueError, match=message):
        tracker.add_prompt(0, 1, **arguments)


def test_removing_an_unknown_object_is_a_clear_error(export_folder):
    tracker = _tracker(export_folder)
    tracker.add_prompt(0, 1, points=[object_centre(1, 0)])
    with pytest.raises(ValueError, match=r"obj_id=7 is not an object of this tracker; its objects are \[1\]"):
        tracker.remove_object(7)
    with pytest.raises(ValueError, match="obj_id=2 is not an object"):
        tracker.clear_prompts_in_frame(0, 2)
    assert tracker.remove_object(1) == [] and tracker.object_ids == []


def test_a_mask_prompt_on_an_export_without_its_graph_says_to_export_again(export_folder, tmp_path):
    import shutil

    older = tmp_path / "older-export"
    shutil.copytree(export_folder, older)
    manifest = json.loads((older / "manifest.json").read_text())
    del manifest["graphs"]["mask_prompt"]
    (older / "manifest.json").write_text(json.dumps(manifest))
    tracker = _tracker(older)
    tracker.add_prompt(0, 1, points=[object_centre(1, 0)])  # clicks still work
    with pytest.raises(ValueError, match="has no mask_prompt graph .* export again for mask prompts"):
        tracker.add_prompt(0, 2, mask=_ellipse_mask(2, 0))


def test_mask_prompt_resizing_in_numpy_matches_the_processor():
    from edgetam_hf.onnx.image_ops import mask_prompt_at_model_size

    processor = tiny_processor()
    session = processor.init_video_session(video=video_frames())
    rng = np.random.default_rng(0)
    masks = [_ellipse_mask(obj, 0) for obj in (1, 2, 3)] + [rng.random((VIDEO_HEIGHT, VIDEO_WIDTH)) > 0.5]
    for mask in masks:
        processor.add_inputs_to_inference_session(session, 0, 1, input_masks=[mask])
        expected = session.objects[1].mask_prompts[0].numpy()
        np.testing.assert_array_equal(mask_prompt_at_model_size(mask, processor.target_size), expected)


def test_bad_tracker_arguments_are_named(export_folder):
    from edgetam_hf.onnx import OnnxVideoTracker

    with pytest.raises(ValueError, match="max_cached_features must be a positive int, got 0"):
        _tracker(export_folder, max_cached_features=0)
    tracker = _tracker(export_folder)
    with pytest.raises(ValueError, match="add_frame is for a tracker made without frames"):
        tracker.add_frame(video_frames()[0])
    with pytest.raises(ValueError, match="obj_id must be an int, got 'one'"):
        tracker.add_prompt(0, "one", points=[object_centre(1, 0)])
    with pytest.raises(ValueError, match=r"must be the index of a frame of the video \(0 to \d+\); got 99"):
        tracker.add_prompt(99, 1, points=[object_centre(1, 0)])
    stream = OnnxVideoTracker(export_folder, memory_dtype="float32")
    first = np.asarray(video_frames()[0])
    stream.add_frame(first)
    with pytest.raises(ValueError, match=r"frame has size \(\d+, \d+\) \(height, width\); the video's frames are"):
        stream.add_frame(first[:-2])
    # A stream keeps the newest frame and its prompted frames: frame 0, never prompted, is dropped
    # (its pixels once a later frame is tracked; its features, with one frame's cached, then too).
    stream = OnnxVideoTracker(export_folder, memory_dtype="float32", max_cached_features=1)
    stream.add_frame(first)
    stream.add_frame(np.asarray(video_frames()[1]))
    stream.add_prompt(1, 1, points=[object_centre(1, 1)])
    stream.track(1)
    with pytest.raises(ValueError, match="frame 0 of the stream is no longer kept"):
        stream.add_prompt(0, 1, points=[object_centre(1, 0)])


def test_bounded_tracker_backward_from_a_middle_prompt_equals_the_pytorch_session(model, export_folder):
    """A bounded tracker keeps the frames next to a prompted frame: tracked forward from frame 20
    of 40, then backward from 20, frames 19 to 0 read the memories of 21 to 23 again."""
    from edgetam_hf.onnx import OnnxVideoTracker

    clip, middle = long_clip(40), 20
    point = object_centre(1, source_frame(middle))
    processor = tiny_processor()
    session = processor.init_video_session(video=clip, memory_dtype=torch.float32)
    processor.add_inputs_to_inference_session(session, middle, 1, input_points=[[[point]]], input_labels=[[[1]]])
    with torch.no_grad():
        expected = [model(session, frame_idx=middle)]
        expected += list(model.propagate_in_video_iterator(session))
        expected += list(model.propagate_in_video_iterator(session, start_frame_idx=middle, reverse=True))
    tracker = OnnxVideoTracker(export_folder, clip, memory_dtype="float32", max_stored_frames=16)
    ours = [tracker.add_prompt(middle, 1, points=[point])]
    ours += list(tracker.propagate())
    ours += list(tracker.propagate(start_frame_idx=middle, reverse=True))
    for mine, reference in zip(ours, expected, strict=True):
        assert mine.frame_idx == reference.frame_idx
        reference_logits = reference.pred_masks.numpy()
        tolerance = LOGIT_ABSOLUTE + RELATIVE_TO_LARGEST * np.abs(reference_logits).max()
        difference = np.abs(mine.mask_logits - reference_logits).max()
        assert difference <= tolerance, f"frame {mine.frame_idx}: logits differ by {difference / tolerance:.1f} tolerances"
