"""The latency recorder and the real-time benchmark's smoke run (no timing is asserted)."""

import gc
import json
import time
from pathlib import Path

import pytest
import torch

from edgetam_hf.latency import LatencyRecorder

REPOSITORY = Path(__file__).resolve().parent.parent


def test_percentiles_leave_the_warm_up_out():
    recorder = LatencyRecorder(skip=2)
    assert recorder.summary() is None
    recorder.seconds = [9.0, 9.0, *[0.001 * value for value in range(1, 101)]]
    recorder.full_gc_frames = [True, True, *[value == 50 for value in range(1, 101)]]
    summary = recorder.summary()
    assert summary.num_frames == 100
    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p99_ms == pytest.approx(99.01)
    assert summary.max_ms == pytest.approx(100.0)
    assert summary.frames_with_full_gc == 1
    assert "p50 50.5 ms" in summary.line() and "p99/p50 1.96" in summary.line()


def test_a_frame_is_timed_and_a_full_collection_in_it_noted():
    recorder = LatencyRecorder()
    with recorder.frame():
        time.sleep(0.01)
    with recorder.frame():
        gc.collect()  # a full (generation 2) collection
    assert recorder.seconds[0] >= 0.01
    assert recorder.full_gc_frames == [False, True]
    assert recorder._on_gc not in gc.callbacks


@pytest.fixture
def realtime_benchmark(monkeypatch):
    monkeypatch.syspath_prepend(str(REPOSITORY))
    from benchmarks import realtime

    threads = torch.get_num_threads()
    yield realtime
    torch.set_num_threads(threads)  # the benchmark sets its own count


def test_the_realtime_benchmark_runs_on_the_tiny_config(realtime_benchmark, tmp_path, capsys):
    argv = ["--tiny", "--sizes", "64", "--objects", "2", "--dtypes", "float32", "--frames", "1", "--warmup", "0",
            "--stream-frames", "1", "--threads", "1", "--out", str(tmp_path)]
    assert realtime_benchmark.main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(row["dtype"], row["size"], row["objects"]) for row in results["rows"]] == [("float32 (float32)", 64, 2)]
    assert [entry["gc_freeze"] for entry in results["long_streams"]] == [False, True]
    assert set(results["cpu_flags"]) >= {"avx2", "avx512_bf16", "amx_bf16"}
    out = capsys.readouterr().out
    assert "load average before" in out
    assert "p99 / p50 over 1 streamed frames, gc.freeze on" in out
