"""Results as JSON (every sample) and as a Markdown table (medians, quartiles, ratios, memory)."""

import json
from pathlib import Path

from .models import ORIGINAL, OURS, TRANSFORMERS
from .results import CaseResult
from .timing import paired_ratio, summarize

COLUMN_ORDER = (OURS, TRANSFORMERS, ORIGINAL)
# Ratios shown: ours against each other implementation, < 1 means ours is faster / smaller.
RATIOS = ((OURS, TRANSFORMERS), (OURS, ORIGINAL))


def write_reports(out_dir: Path, run: dict, cases: list[CaseResult]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps({**run, "cases": [_case_json(case) for case in cases]}, indent=2) + "\n")
    markdown_path.write_text(markdown(run, cases))
    return json_path, markdown_path


def markdown(run: dict, cases: list[CaseResult]) -> str:
    columns = [name for name in COLUMN_ORDER if name in run["implementations"]]
    ratios = [(a, b) for a, b in RATIOS if a in columns and b in columns]
    lines = [*_header(run), ""]
    lines += _timing_table([case for case in cases if not case.held_memory_mib], columns, ratios)
    streaming = [case for case in cases if case.held_memory_mib]
    for case in streaming:
        lines += ["", *_held_memory_table(case)]
    lines += ["", *_notes(cases)]
    return "\n".join(lines) + "\n"


def _header(run: dict) -> list[str]:
    settings, machine, load = run["settings"], run["machine"], run["load_average"]
    lines = [
        f"- machine: {machine['cpu']}, {machine['cpus_available']} CPUs available; "
        + (f"GPU {machine['gpu']}; " if "gpu" in machine else "")
        + f"torch {machine['torch']}, transformers {machine['transformers']}, code {machine['git_commit']}",
        f"- device {settings['device']}, {settings['dtype']}, {settings['threads']} threads; "
        f"{settings['repeats']} timed repetitions after {settings['warmup']} warm-up"
        + (" (tiny config)" if settings["tiny"] else ""),
        f"- load average (1, 5, 15 min) before {load['before']}, after {load['after']}"
        + (": the machine was busy with other work, so timings are preliminary" if run["machine_loaded"] else ""),
        f"- weights: {run['weights']}; image: {settings['image']}; clip: {settings['clip']}",
        f"- cells: median (first quartile - third quartile) in ms; ratio: median of the per-repetition "
        f"ratios (< 1: ours is faster); peak memory: MiB above what was held before the call "
        f"({run['memory_method']})",
    ]
    for name, reason in run["unavailable"].items():
        lines.append(f"- {name}: not run, {reason}")
    return lines


def _timing_table(cases: list[CaseResult], columns: list[str], ratios: list[tuple[str, str]]) -> list[str]:
    header = ["case", *[f"{name} ms" for name in columns], *[f"{a} / {b}" for a, b in ratios]]
    header += [f"peak MiB {name}" for name in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for case in cases:
        title = f"{case.title} (per {case.per})"
        if case.skipped:
            cells = [f"skipped: {case.skipped}"] + [""] * (len(header) - 2)
        else:
            cells = [_time_cell(case, name) for name in columns]
            cells += [_ratio_cell(case, a, b) for a, b in ratios]
            cells += [_memory_cell(case.peak_memory_mib.get(name)) for name in columns]
        lines.append("| " + " | ".join([title, *cells]) + " |")
    return lines


def _held_memory_table(case: CaseResult) -> list[str]:
    points = sorted({point for held in case.held_memory_mib.values() for point in held}, key=_frames_in)
    lines = [f"{case.title}: MiB held, over what was held before the session", ""]
    lines += ["| implementation | " + " | ".join(points) + " | growth per 100 frames |", "|" + "---|" * (len(points) + 2)]
    for name, held in case.held_memory_mib.items():
        values = [held.get(point) for point in points]
        growth = _growth_per_100_frames(points, values)
        lines.append(f"| {name} | " + " | ".join(_memory_cell(value) for value in values) + f" | {_memory_cell(growth)} |")
    return lines


def _notes(cases: list[CaseResult]) -> list[str]:
    lines = []
    for case in cases:
        for note in case.notes:
            lines.append(f"- {case.title}: {note}")
        for name, error in case.errors.items():
            lines.append(f"- {case.title}: {name} failed: {error}")
    return lines


def _time_cell(case: CaseResult, name: str) -> str:
    if name in case.errors:
        return "error (see notes)"
    summary = summarize(case.samples.get(name, []))
    if summary is None:
        return "-"
    return f"{_ms(summary.median)} ({_ms(summary.q1)} - {_ms(summary.q3)})"


def _ratio_cell(case: CaseResult, numerator: str, denominator: str) -> str:
    ratio = paired_ratio(case.samples.get(numerator, []), case.samples.get(denominator, []))
    if ratio is None:
        return "-"
    return f"{ratio.median:.2f} ({ratio.q1:.2f} - {ratio.q3:.2f})"


def _memory_cell(mib: float | None) -> str:
    return "-" if mib is None else f"{mib:.0f}"


def _ms(seconds: float) -> str:
    milliseconds = seconds * 1e3
    if milliseconds < 10:
        return f"{milliseconds:.2f}"
    if milliseconds < 100:
        return f"{milliseconds:.1f}"
    return f"{milliseconds:.0f}"


def _frames_in(point: str) -> int:
    """"after 30 frames" -> 30."""
    return int(point.split()[1])


def _growth_per_100_frames(points: list[str], values: list[float | None]) -> float | None:
    if len(points) < 2 or values[0] is None or values[-1] is None:
        return None
    frames = _frames_in(points[-1]) - _frames_in(points[0])
    return (values[-1] - values[0]) * 100 / frames


def _case_json(case: CaseResult) -> dict:
    summaries = {name: _as_dict(summarize(samples)) for name, samples in case.samples.items()}
    ratios = {
        f"{a}/{b}": _as_dict(paired_ratio(case.samples[a], case.samples[b]))
        for a, b in RATIOS
        if a in case.samples and b in case.samples
    }
    return {
        "name": case.name,
        "title": case.title,
        "per": case.per,
        "skipped": case.skipped,
        "summary_seconds": summaries,
        "ratios": ratios,
        "peak_memory_mib": case.peak_memory_mib,
        "held_memory_mib": case.held_memory_mib,
        "errors": case.errors,
        "notes": case.notes,
        "samples_seconds": case.samples,
    }


def _as_dict(summary) -> dict | None:
    return None if summary is None else summary.as_dict()
