import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _torchvision_shim import install as install_torchvision_shim

install_torchvision_shim()
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


# The tiers that follow from the fixtures a test needs (markers in pyproject.toml); tests that build
# transformers' built-in EdgeTam as their reference carry @pytest.mark.parity themselves.
_TIER_OF_FIXTURE = {"fixtures_dir": "parity", "media_dir": "integration", "fixture_export_folder": "parity"}


def pytest_collection_modifyitems(items):
    for item in items:
        for tier in {_TIER_OF_FIXTURE[name] for name in getattr(item, "fixturenames", ()) if name in _TIER_OF_FIXTURE}:
            item.add_marker(tier)


# (what was compared, max |difference|, tolerance) from the parity tests, printed after the run.
_PARITY_FIGURES: list[tuple[str, float, float]] = []


@pytest.fixture(scope="session")
def parity_figures() -> list[tuple[str, float, float]]:
    return _PARITY_FIGURES


def pytest_terminal_summary(terminalreporter):
    """The worst parity figure of each comparison kind, so every run's log states them."""
    worst: dict[str, tuple[float, float, str]] = {}
    for what, difference, tolerance in _PARITY_FIGURES:
        kind = what.split(":")[0]
        if kind not in worst or difference / tolerance > worst[kind][0] / worst[kind][1]:
            worst[kind] = (difference, tolerance, what)
    if worst:
        terminalreporter.section("parity with Meta's original (worst per kind)")
        for difference, tolerance, what in worst.values():
            terminalreporter.write_line(f"{what}: max |difference| {difference:.3g} (tolerance {tolerance:.3g})")


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


@pytest.fixture(scope="session")
def fixture_export_folder(fixtures_dir, tmp_path_factory) -> Path:
    """An `edgetam-hf export` of the fixture checkpoint: EDGETAM_ONNX_EXPORT when set (made
    beforehand), else exported here once per test run (the full model: minutes on one core)."""
    folder = os.environ.get("EDGETAM_ONNX_EXPORT")
    if folder:
        return Path(folder)
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from _reference import fixture_video_model
    from edgetam_hf.onnx.export import export_onnx

    return export_onnx(fixture_video_model(fixtures_dir), tmp_path_factory.mktemp("fixture-export") / "onnx")


@pytest.fixture(scope="session")
def tiny_video_export(tmp_path_factory) -> Path:
    """The tiny video model (`fill_hole_area` 8) exported to ONNX once per test run (the slow
    step), for every test module that runs the ONNX tracker (defined here to be one for all)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from _video_tiny import EXPORTED_FILL_HOLE_AREA, tiny_model
    from edgetam_hf.onnx.export import export_onnx

    return export_onnx(tiny_model(fill_hole_area=EXPORTED_FILL_HOLE_AREA), tmp_path_factory.mktemp("exports") / "tiny-video-onnx")
