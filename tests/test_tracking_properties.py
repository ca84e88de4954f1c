"""One set of tracking rules, two backends: random sequences of prompts (clicks, boxes, masks on
random frames, for several objects; a prompt on a tracked frame is a correction), propagation
forward and backward from random frames, clearing a frame's prompts, removing an object and
resetting, bounded and unbounded, with `max_cond_frame_num` -1 and 2, run through the PyTorch
session and the ONNX tracker on the tiny export: every step gives the same outputs within the
float32 tolerance, or both refuse it with a ValueError (the bounded trackers' with the same words).

With `max_cond_frame_num` -1 prompts go to two frames at most: the export has slots for two
conditioning frames besides the recent ones (more is the ONNX tracker's documented error)."""

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _video_tiny import EXPORTED_FILL_HOLE_AREA, VIDEO_HEIGHT, VIDEO_WIDTH, long_clip, object_centre, source_frame
from _video_tiny import single_thread, tiny_model, tiny_processor  # noqa: F401  (single_thread: a fixture)
from edgetam_hf.numerics import LOGIT_ABSOLUTE, RELATIVE_TO_LARGEST
from edgetam_hf.tracking.rules import TrackingRules

pytest.importorskip("onnxruntime")

NUM_FRAMES = 10  # more than twice the memory window, so that a bounded tracker forgets
OBJECTS = (1, 2, 3)


@pytest.fixture(scope="module")
def backends(tiny_video_export, tmp_path_factory):
    """max_cond_frame_num -> (PyTorch model, export folder). The graphs do not depend on it: the
    export for 2 is the same graphs with the rule's setting changed in the manifest."""
    closest = tmp_path_factory.mktemp("closest-conditioning-frames")
    for path in tiny_video_export.iterdir():
        if path.name != "manifest.json":
            (closest / path.name).symlink_to(path)
    manifest = json.loads((tiny_video_export / "manifest.json").read_text())
    manifest["video"]["max_cond_frame_num"] = 2
    (closest / "manifest.json").write_text(json.dumps(manifest))
    return {
        -1: (tiny_model(fill_hole_area=EXPORTED_FILL_HOLE_AREA), tiny_video_export),
        2: (tiny_model(fill_hole_area=EXPORTED_FILL_HOLE_AREA, max_cond_frame_num=2), closest),
    }


@st.composite
def sequences(draw):
    max_cond_frame_num = draw(st.sampled_from([-1, 2]))
    frames = st.integers(0, NUM_FRAMES - 1)
    prompt_frames = st.sampled_from(draw(st.lists(frames, min_size=2, max_size=2))) if max_cond_frame_num == -1 else frames
    objects = st.sampled_from(OBJECTS)
    step = st.one_of(
        st.tuples(st.just("click"), objects, prompt_frames, st.booleans(), st.booleans()),  # positive, clear_old_inputs
        st.tuples(st.just("box"), objects, prompt_frames),
        st.tuples(st.just("mask"), objects, prompt_frames),
        st.tuples(st.just("propagate"), st.one_of(st.none(), frames), st.booleans(), st.sampled_from([None, 2, 5])),
        st.tuples(st.just("clear"), objects, prompt_frames),
        st.tuples(st.just("remove"), objects),
        st.tuples(st.just("reset")),
    )
    first = st.tuples(st.just("click"), objects, prompt_frames, st.just(True), st.just(True))
    steps = [draw(first)] + draw(st.lists(step, min_size=4, max_size=9))
    return draw(st.booleans()), max_cond_frame_num, steps


def _ellipse(obj: int, t: int) -> np.ndarray:
    yy, xx = np.mgrid[0:VIDEO_HEIGHT, 0:VIDEO_WIDTH]
    x, y = object_centre(obj, source_frame(t))
    return ((xx - x) / 13.0) ** 2 + ((yy - y) / 10.0) ** 2 <= 1


def _box(obj: int, t: int) -> list[float]:
    x, y = object_centre(obj, source_frame(t))
    return [x - 11.0, y - 9.0, x + 11.0, y + 9.0]


def _click(obj: int, t: int, positive: bool) -> list[float]:
    x, y = object_centre(obj, source_frame(t))
    return [x, y] if positive else [x + 15.0, y - 12.0]


def _run_pytorch(model, processor, session, step) -> list:
    op, *arguments = step
    if op in ("click", "box", "mask"):
        obj, t = arguments[:2]
        if op == "click":
            positive, clear = arguments[2:]
            prompt = dict(input_points=[[[_click(obj, t, positive)]]], input_labels=[[[int(positive)]]], clear_old_inputs=clear)
        else:
            prompt = dict(input_boxes=[[_box(obj, t)]]) if op == "box" else dict(input_masks=[_ellipse(obj, t)])
        processor.add_inputs_to_inference_session(session, t, obj, **prompt)
        return [model(session, frame_idx=t)]
    if op == "propagate":
        start, reverse, count = arguments
        return list(model.propagate_in_video_iterator(session, start, count, reverse))
    if op == "clear":
        return [model.clear_prompts_in_frame(session, arguments[1], arguments[0])]
    if op == "remove":
        return model.remove_object(session, arguments[0])
    session.reset_tracking_data()
    return []


def _run_onnx(tracker, step) -> list:
    op, *arguments = step
    if op in ("click", "box", "mask"):
        obj, t = arguments[:2]
        if op == "click":
            positive, clear = arguments[2:]
            prompt = dict(points=[_click(obj, t, positive)], labels=[int(positive)], clear_old_inputs=clear)
        else:
            prompt = dict(box=_box(obj, t)) if op == "box" else dict(mask=_ellipse(obj, t))
        return [tracker.add_prompt(t, obj, **prompt)]
    if op == "propagate":
        start, reverse, count = arguments
        return list(tracker.propagate(start, count, reverse))
    if op == "clear":
        return [tracker.clear_prompts_in_frame(arguments[1], arguments[0])]
    if op == "remove":
        return tracker.remove_object(arguments[0])
    tracker.reset()
    return []


def _outcome(run):
    try:
        return run(), None
    except ValueError as error:
        return None, str(error)


def _rule_words(message: str) -> str:
    """The words of a bounded tracker's refusal, without the name of its kind and the way out."""
    return message.split(";")[0].replace("session", "tracker")


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sequence=sequences())
def test_the_pytorch_session_and_the_onnx_tracker_agree_step_by_step(backends, sequence):
    from edgetam_hf.onnx import OnnxVideoTracker

    bounded, max_cond_frame_num, steps = sequence
    model, folder = backends[max_cond_frame_num]
    clip = long_clip(NUM_FRAMES)
    processor = tiny_processor()
    session = processor.init_video_session(video=clip, memory_dtype=torch.float32, bounded=bounded)
    window = TrackingRules.read(model.config).memory_window
    tracker = OnnxVideoTracker(folder, clip, memory_dtype="float32", max_stored_frames=window if bounded else None)
    for number, step in enumerate(steps):
        with torch.no_grad():
            expected, expected_error = _outcome(lambda: _run_pytorch(model, processor, session, step))
        ours, error = _outcome(lambda: _run_onnx(tracker, step))
        where = f"step {number} {step} of {steps} (bounded={bounded}, max_cond_frame_num={max_cond_frame_num})"
        assert (error is None) == (expected_error is None), f"{where}: {error or expected_error}"
        if error is not None:
            if "bounded" in expected_error:
                assert _rule_words(error) == _rule_words(expected_error), where
            continue
        for mine, reference in zip(ours, expected, strict=True):
            assert (mine.frame_idx, mine.object_ids) == (reference.frame_idx, reference.object_ids), where
            reference_logits = reference.pred_masks.numpy()
            tolerance = LOGIT_ABSOLUTE + RELATIVE_TO_LARGEST * np.abs(reference_logits).max(axis=(1, 2, 3), keepdims=True)
            difference = np.abs(mine.mask_logits - reference_logits).max(axis=(1, 2, 3), keepdims=True)
            assert (difference <= tolerance).all(), f"{where}, frame {mine.frame_idx}: {(difference / tolerance).max():.2f} tolerances"
            scores = reference.object_score_logits[:, 0].numpy()  # (num_objects, 1) as transformers gives it
            assert np.abs(mine.object_score_logits - scores).max() <= LOGIT_ABSOLUTE + RELATIVE_TO_LARGEST * np.abs(scores).max(), where
