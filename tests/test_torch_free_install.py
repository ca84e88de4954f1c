"""docs/export.md's install without torch, done for real: a fresh virtual environment gets the
package with `--no-deps` and the `onnx-runtime` extra's list from setup.cfg (from PyPI, at the
versions of constraints.txt), and its `edgetam-hf segment` runs on an export made here with torch."""

import configparser
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _image_tiny import tiny_image_model
from edgetam_hf.onnx.export import export_onnx

REPOSITORY = Path(__file__).parents[1]


def _runtime_requirements() -> list[str]:
    setup = configparser.ConfigParser()
    setup.read(REPOSITORY / "setup.cfg")
    return setup["options.extras_require"]["onnx-runtime"].split()


def _run(argv: list, timeout: float) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    completed = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, env=env, timeout=timeout)
    assert completed.returncode == 0, f"{argv}\n{completed.stdout[-2000:]}\n{completed.stderr[-3000:]}"
    return completed


@pytest.mark.slow
def test_a_torch_free_install_segments_an_image_with_an_export_folder(tmp_path):
    export = export_onnx(tiny_image_model(), tmp_path / "export")
    image = np.zeros((96, 128, 3), np.uint8)
    image[20:60, 30:90] = (200, 60, 40)
    Image.fromarray(image).save(tmp_path / "image.png")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=120)
    # this environment's pip installs into the new one (pip >= 22.3): no pip of its own to bootstrap
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, "--no-deps", REPOSITORY], timeout=300)
    _run([*pip, "-c", REPOSITORY / "constraints.txt", *_runtime_requirements()], timeout=300)
    _run([venv / "bin" / "python", "-c", "import importlib.util as u; assert not (u.find_spec('torch') or u.find_spec('transformers'))"], timeout=60)

    out = tmp_path / "out"
    _run([venv / "bin" / "edgetam-hf", "segment", tmp_path / "image.png", "--point", "60,40", "--model", export, "--out", out], timeout=120)
    assert np.asarray(Image.open(out / "masks.png")).shape == (96, 128)
