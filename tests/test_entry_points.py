"""The default converted folder (the video model's, the one `edgetam-hf convert` writes and pushes)
serves every documented entry point, with `import edgetam_hf` and, in fresh processes that never
import it, with `trust_remote_code=True` (docs/checkpoints.md, docs/auto_classes.md).

The folder is written by `conversion.save_model_folder`, the writer `convert_checkpoint` uses, from
the default (released) config with random weights: the files are those of a conversion of Meta's
checkpoint, without needing the checkpoint.
"""

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, AutoModelForMaskGeneration, AutoProcessor, pipeline

from edgetam_hf import (
    EdgeTamConfig,
    EdgeTamImageProcessor,
    EdgeTamModel,
    EdgeTamVideoConfig,
    EdgeTamVideoModel,
    EdgeTamVideoProcessor,
)
from edgetam_hf.conversion import save_model_folder
from edgetam_hf.remote_code import CLASSES_FILE

SRC = Path(__file__).resolve().parents[1] / "src"
TESTS = Path(__file__).resolve().parent
# The cheapest mask generation: one point on a small image.
ONE_POINT = {"points_per_crop": 1, "points_per_batch": 1, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture(scope="module")
def default_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("edgetam_hf_video")
    torch.manual_seed(0)
    save_model_folder(EdgeTamVideoModel(EdgeTamVideoConfig()).eval(), folder)
    return folder


def test_folder_files_modes_and_auto_map(default_folder):
    config = json.loads((default_folder / "config.json").read_text())
    assert config["model_type"] == "edgetam_hf_video"
    assert config["auto_map"]["AutoModel"] == "edgetam_hf_classes.EdgeTamVideoModel"
    assert config["auto_map"]["AutoModelForMaskGeneration"] == "edgetam_hf_classes.EdgeTamModel"
    processor_config = json.loads((default_folder / "processor_config.json").read_text())
    assert processor_config["processor_class"] == "EdgeTamVideoProcessor"
    assert (default_folder / CLASSES_FILE).is_file()
    assert not list(default_folder.glob("modeling*.py")), "our modules are imported, not copied"
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in default_folder.iterdir()}
    assert modes["model.safetensors"] == modes["config.json"], modes


def test_each_class_loads_the_folder_without_a_model_type_warning(default_folder, caplog):
    with caplog.at_level(logging.WARNING):
        image_model = EdgeTamModel.from_pretrained(default_folder)
        video_model = EdgeTamVideoModel.from_pretrained(default_folder)
    assert type(image_model.config) is EdgeTamConfig and type(video_model.config) is EdgeTamVideoConfig
    assert not [record for record in caplog.records if "can yield errors" in record.getMessage()]


def test_auto_classes_after_import(default_folder):
    assert type(AutoModel.from_pretrained(default_folder)) is EdgeTamVideoModel
    mask_model = AutoModelForMaskGeneration.from_pretrained(default_folder)
    assert type(mask_model) is EdgeTamModel and type(mask_model.config) is EdgeTamConfig
    assert type(AutoProcessor.from_pretrained(default_folder)) is EdgeTamVideoProcessor
    assert type(AutoImageProcessor.from_pretrained(default_folder)) is EdgeTamImageProcessor


def test_pipeline_after_import(default_folder):
    generator = pipeline("mask-generation", model=str(default_folder))
    assert type(generator.model) is EdgeTamModel and type(generator.image_processor) is EdgeTamImageProcessor
    outputs = generator(Image.new("RGB", (40, 30), (90, 120, 60)), **ONE_POINT)
    assert tuple(outputs["masks"][0].shape) == (30, 40)


_FRESH_PROCESS = """
import sys
class NotInstalled:  # answers for edgetam_hf as Python does for a package that is not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "edgetam_hf":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
if sys.argv[4] == "without-edgetam_hf":  # the test environment has it installed
    sys.meta_path.insert(0, NotInstalled())
sys.path.insert(0, sys.argv[3])
import _torchvision_shim; _torchvision_shim.install()
import transformers
folder, entry = sys.argv[1], sys.argv[2]
if entry == "pipeline":
    from PIL import Image
    generator = transformers.pipeline("mask-generation", model=folder, trust_remote_code=True)
    outputs = generator(Image.new("RGB", (40, 30), (90, 120, 60)), points_per_crop=1, points_per_batch=1,
                        pred_iou_thresh=0.0, stability_score_thresh=0.0)
    loaded = generator.model
else:
    loaded = getattr(transformers, entry).from_pretrained(folder, trust_remote_code=True)
print("LOADED", type(loaded).__module__, type(loaded).__name__)
"""
_EXPECTED_IN_FRESH_PROCESS = {
    "AutoModel": "EdgeTamVideoModel",
    "AutoModelForMaskGeneration": "EdgeTamModel",
    "AutoProcessor": "EdgeTamVideoProcessor",
    "AutoImageProcessor": "EdgeTamImageProcessor",
    "pipeline": "EdgeTamModel",
}


def _start(folder: Path, entry: str, tmp_path: Path, python_path: str, package: str = "with-edgetam_hf") -> subprocess.Popen:
    environment = dict(
        os.environ,
        PYTHONPATH=python_path,
        HF_MODULES_CACHE=str(tmp_path / f"modules-{entry}"),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    return subprocess.Popen(
        [sys.executable, "-c", _FRESH_PROCESS, str(folder), entry, str(TESTS), package],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
    )


@pytest.mark.slow
def test_every_entry_point_with_trust_remote_code_in_a_fresh_process(default_folder, tmp_path):
    """One process per entry point (they run side by side), none importing edgetam_hf itself:
    transformers imports the folder's edgetam_hf_classes.py, which imports the installed package."""
    processes = {entry: _start(default_folder, entry, tmp_path, str(SRC)) for entry in _EXPECTED_IN_FRESH_PROCESS}
    for entry, process in processes.items():
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"{entry}: {stderr[-3000:]}"
        module, name = stdout.split("LOADED ")[-1].split()
        assert module.startswith("edgetam_hf.") and name == _EXPECTED_IN_FRESH_PROCESS[entry], (entry, module, name)


@pytest.mark.slow
def test_without_the_package_installed_transformers_names_it(default_folder, tmp_path):
    process = _start(default_folder, "AutoModel", tmp_path, "", package="without-edgetam_hf")
    _, stderr = process.communicate(timeout=600)
    assert process.returncode != 0
    assert "edgetam_hf" in stderr and "pip install" in stderr
