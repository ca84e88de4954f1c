"""scripts/train_tiny_video.py (Trainer + clip_loss, held-out curve, --resume) and the clips it
trains on: shapes that turn and bounce back into the frame."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgetam_hf.training.shapes import render_shapes_clip

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_clip_shapes_turn_and_come_back_after_leaving_the_frame():
    rng = np.random.default_rng(0)
    came_back = 0
    for _ in range(20):
        frames, masks = render_shapes_clip(rng, (64, 48), 40, max_shapes=3, max_speed=0.1, max_turn=0.2, wall_margin=0.5)
        assert len(frames) == len(masks) == 40 and masks[0].any(axis=(1, 2)).all()
        assert masks.sum(1).max() <= 1  # visible parts stay disjoint
        for frame, frame_masks in zip(frames, masks, strict=True):
            pixels = np.asarray(frame)
            for mask in frame_masks[frame_masks.any(axis=(1, 2))]:
                assert len(np.unique(pixels[mask], axis=0)) == 1  # one flat colour per visible shape
        seen = masks.any(axis=(2, 3))  # (frames, objects)
        for track in seen.T:
            gone = np.flatnonzero(~track)
            came_back += bool(len(gone) and track[gone[0] :].any())
    assert came_back > 0


def test_a_turning_rectangle_keeps_its_area():
    # No walls, no motion: only the turn; a rectangle drawn as a polygon keeps its pixel count.
    rng = np.random.default_rng(3)
    _, masks = render_shapes_clip(rng, (96, 96), 6, max_shapes=1, max_speed=0.0, max_turn=0.3)
    areas = masks[:, 0].sum(axis=(1, 2))
    assert not np.array_equal(masks[0], masks[-1])
    assert areas.min() > 0.8 * areas.max()


@pytest.mark.slow
def test_the_training_script_trains_on_clip_loss_measures_held_out_clips_and_resumes(tmp_path, monkeypatch):
    """Two steps, then --resume for a third: the curve has steps 0 to 3, the best model loads with
    its trunk unchanged and its memory parts trained, and the checkpoint carries the run."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import evaluate_tiny_video
    import train_tiny_video

    monkeypatch.setattr(evaluate_tiny_video, "HELD_OUT_CLIPS", 1)
    monkeypatch.setattr(evaluate_tiny_video, "HELD_OUT_FRAMES", 3)
    out = tmp_path / "run"
    for argv in (["--steps", "2"], ["--steps", "3", "--resume"]):
        monkeypatch.setattr(sys, "argv", ["train_tiny_video.py", "--out", str(out), "--eval-steps", "1", *argv])
        train_tiny_video.main()
    report = json.loads((out / "training_report.json").read_text())
    assert [point["step"] for point in report["curve"]] == [0, 1, 2, 3]
    assert report["random_memory_j_and_f"] == report["curve"][0]["j_and_f"] and 0 <= report["per_frame_box_ceiling"] <= 100
    assert report["steps"] == 3 and (out / "checkpoint-3").is_dir()

    from edgetam_hf import EdgeTamModel
    from edgetam_hf.modeling_video import EdgeTamVideoModel
    from edgetam_hf.video_processing import EdgeTamVideoProcessor

    image_model = EdgeTamModel.from_pretrained(str(evaluate_tiny_video.BUNDLED_MODEL))
    initial = evaluate_tiny_video.video_model_from_image_model(image_model, random_image_parts=False).state_dict()
    trained = EdgeTamVideoModel.from_pretrained(str(out / "checkpoint-3")).state_dict()
    moved = {name.split(".")[0] for name, weight in trained.items() if not torch.equal(weight, initial[name])}
    assert {"memory_attention", "memory_encoder", "spatial_perceiver", "mask_decoder", "prompt_encoder"} <= moved, moved
    assert not moved & set(evaluate_tiny_video.IMAGE_TRUNK_PARTS), moved
    best = evaluate_tiny_video.trained_video_model(out / "best", image_model)  # refuses another trunk
    assert EdgeTamVideoProcessor.from_pretrained(str(out / "best")).target_size == best.config.image_size
