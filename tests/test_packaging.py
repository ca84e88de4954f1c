"""A non-editable install ships the bundled tiny models: a wheel built from the checkout, unpacked
alone on the path, finds and loads both folders where the demo looks for them."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
BUILD_FILES = ("setup.cfg", "pyproject.toml", "README.md")

LOAD_BOTH = """
import sys
sys.path.insert(0, {tests!r})
import _torchvision_shim
_torchvision_shim.install()
import edgetam_hf
from edgetam_hf import EdgeTamModel, EdgeTamVideoModel
from edgetam_hf.cli.demo import BUNDLED_MODEL_DIR, BUNDLED_VIDEO_MODEL_DIR
from edgetam_hf.cli.models import processor_for
from edgetam_hf.video_processing import EdgeTamVideoProcessor
assert edgetam_hf.__file__.startswith({site!r}), edgetam_hf.__file__
image_model = EdgeTamModel.from_pretrained(str(BUNDLED_MODEL_DIR))
video_model = EdgeTamVideoModel.from_pretrained(str(BUNDLED_VIDEO_MODEL_DIR))
assert processor_for(EdgeTamVideoProcessor, video_model).target_size == video_model.config.image_size
print(image_model.config.prompt_encoder_config.image_size, video_model.config.image_size)
"""


@pytest.mark.slow
def test_the_wheel_carries_both_tiny_models_and_the_installed_package_loads_them(tmp_path):
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(REPOSITORY / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in BUILD_FILES:
        shutil.copy(REPOSITORY / name, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(tmp_path / "dist"), str(source)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("edgetam_hf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("tiny_model", "tiny_video_model"):
        for file_name in ("config.json", "model.safetensors", "training_report.json", "processor_config.json"):
            assert f"edgetam_hf/{folder}/{file_name}" in names, f"the wheel lacks edgetam_hf/{folder}/{file_name}"

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = LOAD_BOTH.format(tests=str(REPOSITORY / "tests"), site=str(site))
    environment = {**os.environ, "PYTHONPATH": str(site)}  # before the editable install's path
    loaded = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    image_side, video_side = loaded.stdout.split()
    assert image_side == video_side  # one input size, carried by each folder
