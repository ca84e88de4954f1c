import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _torchvision_shim import install as install_torchvision_shim

install_torchvision_shim()
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The reference fixtures of Meta's original code (EDGETAM_FIXTURES); skips when unset."""
    path = os.environ.get("EDGETAM_FIXTURES")
    if not path:
        pytest.skip("EDGETAM_FIXTURES is not set")
    path = Path(path)
    if not (path / "edgetam_random_seed0.pt").is_file():
        pytest.fail(f"EDGETAM_FIXTURES={path} does not hold edgetam_random_seed0.pt")
    return path


@pytest.fixture(scope="session")
def oracle(fixtures_dir):
    """The original run's manifest and its stored tensors (inputs and outputs of every case)."""
    run_dir = fixtures_dir / "original_seed0"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return manifest, load_file(str(run_dir / "oracle.safetensors"))
