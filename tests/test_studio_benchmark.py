"""The studio's latency benchmark (benchmarks/studio_latency.py) runs end to end on the bundled
tiny models, so it cannot rot; its figures are printed, never asserted."""

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("starlette", reason="the studio extra is not installed")  # make test installs it
from test_studio_browser import chromium_path  # noqa: E402

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_latency_benchmark_runs_on_the_tiny_models(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(REPOSITORY))  # `benchmarks` lives beside src/, not in the package
    from benchmarks import studio_latency

    threads = torch.get_num_threads()
    try:
        assert studio_latency.main(["--tiny", "--clicks", "1", "--threads", "1", "--chromium", chromium_path(), "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)  # the benchmark sets its own count
    report = json.loads((tmp_path / "results.json").read_text())
    assert set(report["cases"]) == {"image click", "video frame click"}
    for summary in report["cases"].values():
        assert len(summary["samples"]) == 1 and summary["median_server_ms"] <= summary["median_total_ms"]
