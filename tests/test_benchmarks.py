"""The benchmark harness (benchmarks/) runs end to end on the tiny config, so it cannot rot.

Nothing here asserts a timing: only that every case runs (or says why it is skipped), that ours
produced samples, and that the JSON and Markdown reports are written.
"""

import json
from pathlib import Path

import pytest
import torch

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture
def benchmarks_package(monkeypatch):
    """The `benchmarks` package of this checkout (it lives beside `src/`, not inside the package)."""
    monkeypatch.syspath_prepend(str(REPOSITORY))
    from benchmarks import run

    threads = torch.get_num_threads()
    yield run
    torch.set_num_threads(threads)  # the harness sets its own count


def test_tiny_run_measures_every_case_and_writes_the_reports(benchmarks_package, tmp_path, capsys):
    # One thread: on a loaded machine two spinning OpenMP threads slow tiny models many times over.
    assert benchmarks_package.main(["--tiny", "--threads", "1", "--out", str(tmp_path)]) == 0

    results = json.loads((tmp_path / "results.json").read_text())
    cases = {case["name"]: case for case in results["cases"]}
    assert list(cases) == list(benchmarks_package.CASE_GROUPS["all"])
    for name, case in cases.items():
        assert not (case["skipped"] or "").startswith("failed"), f"{name}: {case['skipped']}"
        assert "ours" not in case["errors"], f"{name}: {case['errors']}"
    assert results["settings"]["threads"] == 1
    assert len(results["load_average"]["before"]) == 3
    assert len(cases["image_encoder"]["samples_seconds"]["ours"]) == 1  # --tiny: one repetition
    if "transformers" in results["implementations"]:
        assert cases["image_encoder"]["ratios"]["ours/transformers"]["count"] == 1

    markdown = (tmp_path / "results.md").read_text()
    assert "| image encoder, 128x128 (per call) |" in markdown
    assert markdown in capsys.readouterr().out  # the table is printed too


def test_unknown_case_is_refused(benchmarks_package, capsys):
    with pytest.raises(SystemExit):
        benchmarks_package.parse_arguments(["--cases", "image_encoder,warp_drive"])
    assert "unknown case 'warp_drive'" in capsys.readouterr().err


def test_case_groups_expand_in_table_order(benchmarks_package):
    options = benchmarks_package.parse_arguments(["--cases", "prompt_decoder,image"])
    assert options.case_names == ["image_encoder", "prompt_decoder", "mask_generation"]


def test_long_clips_play_back_and_forth_without_a_jump(benchmarks_package):
    from benchmarks.media import ping_pong_indices

    assert ping_pong_indices(3, 8) == [0, 1, 2, 1, 0, 1, 2, 1]


def test_ratio_pairs_samples_of_the_same_repetition(benchmarks_package):
    from benchmarks.timing import paired_ratio, summarize

    ratio = paired_ratio([1.0, 1.0, 3.0], [2.0, 6.0, 6.0])  # per repetition: 0.5, 1/6, 0.5
    assert (ratio.median, ratio.maximum, ratio.count) == (0.5, 0.5, 3)
    assert summarize([1.0, 2.0, 3.0, 4.0, 5.0]).q1 == 2.0


def test_the_realtime_benchmark_runs_on_the_tiny_config(benchmarks_package, tmp_path, capsys):
    from benchmarks import realtime

    argv = ["--tiny", "--sizes", "64", "--objects", "2", "--dtypes", "float32", "--frames", "1", "--warmup", "0",
            "--stream-frames", "1", "--threads", "1", "--out", str(tmp_path)]
    assert realtime.main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(row["dtype"], row["size"], row["objects"]) for row in results["rows"]] == [("float32 (float32)", 64, 2)]
    assert [entry["gc_freeze"] for entry in results["long_streams"]] == [False, True]
    assert set(results["cpu_flags"]) >= {"avx2", "avx512_bf16", "amx_bf16"}
    out = capsys.readouterr().out
    assert "load average before" in out
    assert "p99 / p50 over 1 streamed frames, gc.freeze on" in out
