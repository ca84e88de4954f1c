"""The latency recorder of streamed frames (the benchmark using it: tests/test_benchmarks.py)."""

import gc
import time

import pytest

from edgetam_hf.latency import LatencyRecorder


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
