"""Runs `annotate`'s videos over the processes `accelerate launch` started (one when started
plainly), resumably, each video's failure kept to itself.

- Plan: the main process lists the videos not yet done and splits them over the processes,
  balanced by frame count, then sends every process the same plan (no two processes read the
  output folder at different moments and disagree about what is left).
- Output: a video is written into OUT/.partial/<video>/, then its done marker
  (`.done`, JSON: frames, objects, seconds, process), then the folder is renamed to OUT/<video>.
  A folder with a marker is finished and skipped by a rerun; anything else is redone, so a killed
  run loses only the videos it had in flight.
- Failures: a video that raises is recorded (one JSON line: video, error, process) and the
  process goes on with its next video; at the end the main process gathers the lines into
  OUT/failures.jsonl. A rerun retries the failed videos.
"""

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from .progress import progress

from .annotate_jobs import VideoJob

if TYPE_CHECKING:
    from accelerate import PartialState

logger = logging.getLogger(__name__)

DONE_MARKER = ".done"
PARTIAL_DIR = ".partial"
FAILURES_FILE = "failures.jsonl"

# annotate_one(job, folder to write <frame>.png into, progress bar) -> its marker's facts (frames, objects)
AnnotateOne = Callable[[VideoJob, Path, tqdm], dict]


@dataclass
class ProcessReport:
    """What one process did: the main process prints the sum."""

    videos: int = 0
    frames: int = 0
    failures: int = 0


def split_by_frames(frame_counts: list[int], num_processes: int) -> list[list[int]]:
    """Indices of the videos each process takes: longest first, each to the process with the
    fewest frames so far (ties to the lowest rank): within the longest video of the optimum."""
    loads = [0] * num_processes
    shares = [[] for _ in range(num_processes)]
    for index in sorted(range(len(frame_counts)), key=lambda i: (-frame_counts[i], i)):
        rank = min(range(num_processes), key=lambda r: (loads[r], r))
        shares[rank].append(index)
        loads[rank] += frame_counts[index]
    return shares


def is_done(video_dir: Path) -> bool:
    return (video_dir / DONE_MARKER).is_file()


def run_jobs(jobs: list[VideoJob], out_root: Path, annotate_one: AnnotateOne, state: "PartialState") -> int:
    """Annotates this process's share of `jobs`; returns 0, or 1 when a video failed."""
    from accelerate.utils import broadcast_object_list, gather_object

    started = time.perf_counter()
    plan = [None]
    if state.is_main_process:
        plan = [_make_plan(jobs, out_root, state.num_processes)]
    broadcast_object_list(plan, from_process=0)
    pending, shares = plan[0]
    my_jobs = [pending[index] for index in shares[state.process_index]]

    report = _run_share(my_jobs, out_root, annotate_one, state.process_index)
    reports = gather_object([report])
    if state.is_main_process:
        _merge_failure_files(out_root, state.num_processes)
        if (out_root / PARTIAL_DIR).is_dir() and not any((out_root / PARTIAL_DIR).iterdir()):
            (out_root / PARTIAL_DIR).rmdir()  # every video's work is in place or recorded as failed
        _print_summary(reports, len(jobs) - len(pending), time.perf_counter() - started, out_root)
    state.wait_for_everyone()
    return 1 if sum(report.failures for report in reports) else 0


def _make_plan(jobs: list[VideoJob], out_root: Path, num_processes: int) -> tuple[list[VideoJob], list[list[int]]]:
    out_root.mkdir(parents=True, exist_ok=True)
    # The failures of an earlier run are retried now: their records go.
    for stale in [out_root / FAILURES_FILE, *out_root.glob("failures.process-*.jsonl")]:
        stale.unlink(missing_ok=True)
    pending = [job for job in jobs if not is_done(out_root / job.name)]
    return pending, split_by_frames([job.num_frames for job in pending], num_processes)


def _run_share(jobs: list[VideoJob], out_root: Path, annotate_one: AnnotateOne, rank: int) -> ProcessReport:
    report = ProcessReport()
    with progress(total=sum(job.num_frames for job in jobs), desc=f"process {rank}", unit="frame") as bar:
        for job in jobs:
            try:
                report.frames += _annotate_into_place(job, out_root, annotate_one, bar, rank)
                report.videos += 1
            except Exception as error:  # any error of one video is that video's failure; the others go on
                logger.warning("video %s failed: %s", job.name, error)
                report.failures += 1
                _record_failure(out_root, rank, job, error)
                shutil.rmtree(out_root / PARTIAL_DIR / job.name, ignore_errors=True)
    return report


def _annotate_into_place(job: VideoJob, out_root: Path, annotate_one: AnnotateOne, progress: tqdm, rank: int) -> int:
    partial = out_root / PARTIAL_DIR / job.name
    if partial.exists():  # left by a killed run
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    started = time.perf_counter()
    facts = annotate_one(job, partial, progress)
    marker = {**facts, "seconds": round(time.perf_counter() - started, 3), "process": rank}
    (partial / DONE_MARKER).write_text(json.dumps(marker))
    final = out_root / job.name
    if final.exists():  # a folder without a marker is no finished result: replaced
        shutil.rmtree(final)
    partial.rename(final)
    return facts["frames"]


def _record_failure(out_root: Path, rank: int, job: VideoJob, error: Exception) -> None:
    """One line per failure, in this process's own file (no two processes append to one file)."""
    error_text = " ".join(f"{type(error).__name__}: {error}".split())
    line = json.dumps({"video": job.name, "source": str(job.source), "error": error_text, "process": rank})
    with open(out_root / f"failures.process-{rank}.jsonl", "a") as file:
        file.write(line + "\n")


def _merge_failure_files(out_root: Path, num_processes: int) -> None:
    parts = [out_root / f"failures.process-{rank}.jsonl" for rank in range(num_processes)]
    lines = "".join(part.read_text() for part in parts if part.is_file())
    if lines:
        merged = out_root / f".{FAILURES_FILE}.partial"
        merged.write_text(lines)
        merged.replace(out_root / FAILURES_FILE)
    for part in parts:
        part.unlink(missing_ok=True)


def _print_summary(reports: list[ProcessReport], skipped: int, seconds: float, out_root: Path) -> None:
    videos = sum(report.videos for report in reports)
    frames = sum(report.frames for report in reports)
    failures = sum(report.failures for report in reports)
    print(
        f"annotated {videos} video(s), {frames} frame(s) in {seconds:.1f} s ({frames / max(seconds, 1e-9):.2f} frames/s) "
        f"on {len(reports)} process(es); {skipped} already done; {failures} failed"
        + (f" (see {out_root / FAILURES_FILE})" if failures else "")
        + f"; masks in {out_root}"
    )

