"""Per-frame latency of a stream: p50 / p95 / p99, and what the garbage collector did meanwhile.

Real-time use cares about the slow frames, not the mean: a tracker at 50 ms per frame that
stalls for 300 ms every few seconds drops frames. The recorder times each frame and notes the
frames during which Python's cyclic garbage collector ran a full (generation 2) collection, the
usual cause of such stalls in a long-running Python loop, so a report can tell the two apart.
"""

import contextlib
import gc
import time
from dataclasses import dataclass

import numpy as np

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class LatencySummary:
    """Per-frame milliseconds at `PERCENTILES`, over `num_frames` frames."""

    num_frames: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    frames_with_full_gc: int

    def line(self) -> str:
        return (
            f"per-frame latency over {self.num_frames} frame(s): p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms (p99/p50 {self.p99_ms / max(self.p50_ms, 1e-9):.2f}), max {self.max_ms:.1f} ms; "
            f"{self.frames_with_full_gc} frame(s) with a full garbage collection"
        )


class LatencyRecorder:
    """Times frames: `with recorder.frame(): ...` around each one, then `summary()`.

    `skip` first frames are timed but left out of the summary (warm-up: the first frames build
    caches, kernels' plans and the memory bank).
    """

    def __init__(self, skip: int = 0):
        self.skip = skip
        self.seconds: list[float] = []
        self.full_gc_frames: list[bool] = []
        self._full_gc_ran = False

    @contextlib.contextmanager
    def frame(self):
        self._full_gc_ran = False
        gc.callbacks.append(self._on_gc)
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            gc.callbacks.remove(self._on_gc)
            self.seconds.append(elapsed)
            self.full_gc_frames.append(self._full_gc_ran)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start" and info.get("generation") == 2:
            self._full_gc_ran = True

    def summary(self) -> LatencySummary | None:
        """None until a frame past the warm-up was timed."""
        kept = np.asarray(self.seconds[self.skip :]) * 1000.0
        if kept.size == 0:
            return None
        p50, p95, p99 = np.percentile(kept, PERCENTILES)
        return LatencySummary(
            int(kept.size), float(p50), float(p95), float(p99), float(kept.max()), sum(self.full_gc_frames[self.skip :])
        )
