"""What one benchmark case measured, for every implementation."""

from collections.abc import Callable
from dataclasses import dataclass, field

from .memory import peak_memory_mib
from .timing import time_alternating


@dataclass
class CaseResult:
    """The measurements of one case; `samples` and memories are keyed by implementation name."""

    name: str  # what --cases selects, e.g. "image_encoder"
    title: str  # the table's row label, e.g. "image encoder, 1024x1024"
    per: str = "call"  # what one sample times: "call" or "frame"
    samples: dict[str, list[float]] = field(default_factory=dict)  # seconds
    peak_memory_mib: dict[str, float | None] = field(default_factory=dict)  # above what was held before
    # Memory held at named points of a long run (the streaming case), e.g. {"after 30 frames": MiB}.
    held_memory_mib: dict[str, dict[str, float | None]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # an implementation that raised: its error
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the case did not run at all


def skipped_case(name: str, title: str, reason: str) -> CaseResult:
    return CaseResult(name=name, title=title, skipped=reason)


def measure_calls(result: CaseResult, calls: dict[str, Callable[[], object]], options) -> None:
    """Times the calls in alternation (see `time_alternating`), then measures each one's peak
    memory in one more call of its own, and records both in `result`."""
    samples, errors = time_alternating(calls, options.repeats, options.warmup, options.device)
    result.samples.update(samples)
    result.errors.update(errors)
    for name in samples:
        result.peak_memory_mib[name] = peak_memory_mib(calls[name], options.device)
