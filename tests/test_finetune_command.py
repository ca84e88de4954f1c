"""`edgetam-hf finetune --resume` with more `--steps` than the checkpoint's run: the extra steps
train (transformers' Trainer would restore the finished schedule and run them at learning rate 0)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from _image_tiny import tiny_config
from edgetam_hf import EdgeTamModel
from edgetam_hf.cli import main
from edgetam_hf.cli.models import CHECKPOINT_VARIABLE
from edgetam_hf.training.shapes import render_shapes_scene

TINY_IMAGE_SIZE = 128


@pytest.fixture
def shapes_folder(tmp_path):
    """Three rendered scenes as DATA/images/N.png with instance-id masks in DATA/masks/N.png."""
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    rng = np.random.default_rng(4)
    for index in range(3):
        image, masks = render_shapes_scene(rng, (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
        image.save(data / "images" / f"{index}.png")
        ids = np.zeros(masks.shape[1:], np.uint8)
        for object_id, mask in enumerate(masks, start=1):
            ids[mask] = object_id
        Image.fromarray(ids).save(data / "masks" / f"{index}.png")
    torch.manual_seed(0)
    EdgeTamModel(tiny_config(TINY_IMAGE_SIZE)).save_pretrained(tmp_path / "start")
    return data


def test_resume_with_more_steps_trains_the_extra_steps(shapes_folder, tmp_path):
    run = tmp_path / "run"
    common = ["finetune", str(shapes_folder), "--model", str(tmp_path / "start"), "--out", str(run), "--device", "cpu",
              "--batch-size", "2", "--save-steps", "2", "--learning-rate", "1e-3"]
    assert main([*common, "--steps", "2"]) == 0
    assert main([*common, "--steps", "4", "--resume"]) == 0

    history = json.loads((run / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    rates = {entry["step"]: entry["learning_rate"] for entry in history if "learning_rate" in entry}
    assert sorted(rates) == [1, 2, 3, 4] and all(rates[step] > 0 for step in (3, 4)), rates
    before, after = load_file(run / "checkpoint-2" / "model.safetensors"), load_file(run / "checkpoint-4" / "model.safetensors")
    name = "mask_decoder.iou_token.weight"  # trainable, and no BatchNorm statistic
    assert not torch.equal(before[name], after[name])


def test_resume_with_fewer_steps_than_done_says_so(shapes_folder, tmp_path, capsys):
    common = ["finetune", str(shapes_folder), "--model", str(tmp_path / "start"), "--out", str(tmp_path / "run"),
              "--device", "cpu", "--batch-size", "2", "--save-steps", "2"]
    assert main([*common, "--steps", "2"]) == 0
    capsys.readouterr()
    assert main([*common, "--steps", "1", "--resume"]) == 2
    error = capsys.readouterr().err
    assert "--steps 1" in error and "checkpoint-2" in error


def test_finetune_without_model_takes_the_checkpoint_the_demo_finds(shapes_folder, tmp_path, monkeypatch):
    monkeypatch.setenv(CHECKPOINT_VARIABLE, str(tmp_path / "start"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["finetune", str(shapes_folder), "--out", str(tmp_path / "run"), "--device", "cpu", "--batch-size", "2", "--steps", "1"]
    assert main(argv) == 0
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
