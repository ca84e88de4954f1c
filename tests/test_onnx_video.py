"""The exported video graphs and `OnnxVideoTracker` on the tiny video model, against our PyTorch
session (fp32 model): every output of a multi-object clip with objects prompted on different
frames, a box, a correction click and reverse tracking; the NumPy parts (hole filling, memory
selection, frame preprocessing) against their torch counterparts; streaming in bounded memory.

Tolerance: the graphs run the same float32 operations through onnxruntime's kernels, so logits
agree to float rounding, `edgetam_hf.numerics` (1e-4 plus a share of the largest logit); mask bits
may differ only where the logit lies within that of 0. Memories are compared stored in float32
(in bfloat16, one rounding step taken the other way moves later frames by ~1e-3).
"""

import numpy as np
import pytest
import torch

from _video_tiny import NUM_FRAMES, TINY_IMAGE_SIZE, object_centre, tiny_model, tiny_processor, video_frames
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
