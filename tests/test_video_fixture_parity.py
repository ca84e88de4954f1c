"""Parity with Meta's original video predictor on the stored fixture (random weights, fp32, CPU).

Each scenario of the fixture (`vid_single`, `vid_ctrl`, `vid_main`: clicks, boxes, objects
prompted on different frames, a correction click, a reset, reverse tracking) is replayed through
the processor and the model, and every step's outputs are compared with the stored ones: the
256x256 logits (placeholders included), the object-score logits (where the original has one) and
the video-resolution mask bits. The fixture was made without hole filling, so it is off here.

Tolerances are those of `edgetam_hf.numerics` (as in tests/test_image_fixture_parity.py), per object:
1e-4 + 3e-5 of its largest logit, since the fixture was made on another CPU whose kernels round
differently. Meta's code run on our development machine differs from the stored run by up to 17 %
of that tolerance (1.1e-4 in vid_main), flips no mask bit outside the pixels whose stored logit
lies within the tolerance of 0, and this package equals that local run of Meta's code bit for bit
on every step of the three scenarios (with 2 threads, as the fixture was made).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _reference import VIDEO_SCENARIOS, fixture_video_model
from edgetam_hf.numerics import LOGIT_ABSOLUTE, RELATIVE_TO_LARGEST
from edgetam_hf.video_processing import EdgeTamVideoProcessor

@pytest.fixture(scope="module")
def model(fixtures_dir):
    return fixture_video_model(fixtures_dir)


@pytest.fixture(scope="module")
def processor():
    return EdgeTamVideoProcessor()


@pytest.fixture(scope="module")
def session(fixtures_dir, processor):
    # One session for the three scenarios (reset in between) keeps the 10 frames' features.
    frames_dir = fixtures_dir / "original_seed0" / "frames"
    return processor.init_video_session(str(frames_dir), max_vision_features_cache_size=10)


@pytest.mark.parametrize("scenario", VIDEO_SCENARIOS)
def test_scenario_matches_original(scenario, oracle, model, processor, session, parity_figures):
    manifest, tensors = oracle
    session.reset_tracking_data()
    video_size = tuple(manifest["video"][scenario]["video_hw"])
    for step in manifest["video"][scenario]["steps"]:
        if step["op"] == "add":
            processor.add_inputs_to_inference_session(session, step["frame"], step["obj"], **_prompt(step["prompt"]))
            output = model(session, frame_idx=step["frame"])
            figures = _check_step(f"{scenario}/{step['tag']}", output, step, tensors, processor, video_size)
            parity_figures.extend(figures)
        elif step["op"] == "propagate":
            outputs = list(
                model.propagate_in_video_iterator(
                    session, start_frame_idx=step["start_frame_idx"], reverse=step["reverse"]
                )
            )
            assert [output.frame_idx for output in outputs] == [frame["frame"] for frame in step["frames"]]
            for output, frame in zip(outputs, step["frames"], strict=True):
                name = f"{scenario}/{step['tag']}/f{frame['frame']}"
                parity_figures.extend(_check_step(name, output, frame, tensors, processor, video_size))
        else:
            assert step["op"] == "reset"
            session.reset_tracking_data()


def _prompt(prompt: dict) -> dict:
    kwargs = {}
    if prompt["points"] is not None:
        kwargs["input_points"] = [[prompt["points"]]]
        kwargs["input_labels"] = [[prompt["labels"]]]
    if prompt["box"] is not None:
        kwargs["input_boxes"] = [[prompt["box"]]]
    return kwargs


def _check_step(name, output, step, tensors, processor, video_size) -> list[tuple[str, float, float]]:
    """Checks one step's outputs; returns its worst figures (what, max |difference|, tolerance)."""
    assert output.object_ids == step["obj_ids"], name
    reference = _stored(tensors, step["low_res"])  # (num_objects, 1, 256, 256)
    # per object: its placeholder (-1024 everywhere) exactly, its logits within the tolerance
    logit_tolerance = LOGIT_ABSOLUTE + RELATIVE_TO_LARGEST * reference.abs().amax(dim=(1, 2, 3), keepdim=True)
    is_placeholder = (reference == -1024).flatten(1).all(dim=1)
    assert torch.equal(output.pred_masks[is_placeholder], reference[is_placeholder]), name
    difference = (output.pred_masks - reference).abs().amax(dim=(1, 2, 3), keepdim=True)  # per object
    worst = (difference / logit_tolerance).flatten().argmax()
    worst_difference, worst_tolerance = difference.flatten()[worst].item(), logit_tolerance.flatten()[worst].item()
    assert bool((difference <= logit_tolerance).all()), f"{name}: logits differ by {worst_difference:.3g}"

    reference_scores = _stored(tensors, step["object_score_logits"]).reshape(-1)
    has_score = ~torch.isnan(reference_scores)  # NaN: no output of the object there yet
    scores = output.object_score_logits.reshape(-1)
    score_difference = (scores[has_score] - reference_scores[has_score]).abs().max().item()
    assert score_difference <= LOGIT_ABSOLUTE, name

    masks = processor.post_process_masks([output.pred_masks], [list(video_size)])[0].numpy()
    expected = _unpack_bits(_stored(tensors, step["video_res"]["bits"]), masks.shape)
    reference_logits = _reference_video_logits(reference, video_size)
    decided = np.abs(reference_logits) > logit_tolerance.numpy()
    assert np.array_equal(masks[decided], expected[decided]), name
    return [
        (f"video low-res logits: {name}", worst_difference, worst_tolerance),
        (f"video object_score_logits: {name}", score_difference, LOGIT_ABSOLUTE),
    ]


def _stored(tensors, entry: dict) -> torch.Tensor:
    return tensors[entry.get("key") or entry["same_as"]]


def _unpack_bits(bits: torch.Tensor, shape) -> np.ndarray:
    flat = np.unpackbits(bits.numpy(), axis=-1, count=shape[-2] * shape[-1])
    return flat.reshape(shape).astype(bool)


def _reference_video_logits(low_res: torch.Tensor, video_size) -> np.ndarray:
    """The stored run's video-resolution logits, rebuilt from its 256x256 logits as the original
    upsamples them (up to float32 rounding, ~1e-6, far inside the tolerance that decides a pixel)."""
    return F.interpolate(low_res, video_size, mode="bilinear", align_corners=False).numpy()
