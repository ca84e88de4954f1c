"""benchmarks/soak.py runs end to end on the tiny config with a short stream, so it cannot rot.
Nothing here asserts a timing or a memory figure: only that every implementation streamed, was
sampled as asked, and that the table and the plot are written."""

from pathlib import Path

import pytest
import torch
from PIL import Image

REPOSITORY = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # builds both libraries' models; compares no two computation paths


def test_a_short_tiny_soak_writes_its_table_and_plot(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(REPOSITORY))
    from benchmarks import soak

    threads = torch.get_num_threads()
    try:
        assert soak.main(["--tiny", "--frames", "6", "--every", "3", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    report = (tmp_path / "soak.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[0] for row in rows] == ["| 3", "| 6"]
    assert "ours MiB" in report and "transformers MiB" in report
    assert Image.open(tmp_path / "soak.png").size == soak.PLOT_SIZE
