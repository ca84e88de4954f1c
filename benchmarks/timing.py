"""Timing: implementations called in alternation, and the statistics of their samples.

The machines we measure on are often shared, so a burst of load from elsewhere can slow whatever
runs during it. Calling the implementations in alternation (ours, theirs, theirs, ours, ...) spreads
such bursts over all of them, and the ratio of each pair of neighbouring calls cancels most of it:
the ratio column is the median of those paired ratios, not the ratio of two medians.
"""

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Summary:
    """Order statistics of one implementation's samples (seconds, or a ratio)."""

    median: float
    q1: float  # first quartile
    q3: float  # third quartile
    minimum: float
    maximum: float
    count: int

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(samples: list[float]) -> Summary | None:
    if not samples:
        return None
    if len(samples) == 1:
        value = samples[0]
        return Summary(value, value, value, value, value, 1)
    q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return Summary(median, q1, q3, min(samples), max(samples), len(samples))


def paired_ratio(numerator: list[float], denominator: list[float]) -> Summary | None:
    """Summary of numerator[i] / denominator[i]: sample i of both was taken in the same repetition."""
    pairs = [(a, b) for a, b in zip(numerator, denominator) if b > 0]
    return summarize([a / b for a, b in pairs])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], object], device: torch.device) -> float:
    """Wall time of one call in seconds, with the device's queued work included."""
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start


def alternating_order(names: list[str], repetition: int) -> list[str]:
    """Forward on even repetitions, backward on odd ones: no implementation always runs first."""
    return names if repetition % 2 == 0 else names[::-1]


def time_alternating(
    calls: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Times every call `repeats` times after `warmup` untimed calls, alternating the order.

    Returns `(samples, errors)`: seconds per implementation, and for an implementation that raised,
    its error (it is dropped from the rest of the run, the others go on).
    """
    samples = {name: [] for name in calls}
    errors: dict[str, str] = {}
    for repetition in range(-warmup, repeats):
        for name in alternating_order([name for name in calls if name not in errors], repetition):
            try:
                elapsed = timed(calls[name], device)
            except Exception as error:  # noqa: BLE001 - a failing implementation is a result to report
                errors[name] = describe_error(error)
                continue
            if repetition >= 0:
                samples[name].append(elapsed)
    return {name: values for name, values in samples.items() if name not in errors}, errors


def time_in_lockstep(
    streams: dict[str, Iterator], device: torch.device, untimed_steps: int = 0
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Advances every implementation's iterator (one step: one video frame) in turn, alternating
    the order at each step, and times each step; the first `untimed_steps` steps are not kept.

    Returns `(samples, errors)` as `time_alternating`; an exhausted iterator simply stops.
    """
    samples = {name: [] for name in streams}
    errors: dict[str, str] = {}
    active = list(streams)
    step = 0
    while active:
        for name in alternating_order(list(active), step):
            try:
                elapsed = timed(lambda: next(streams[name]), device)
            except StopIteration:
                active.remove(name)
                continue
            except Exception as error:  # noqa: BLE001 - a failing implementation is a result to report
                errors[name] = describe_error(error)
                active.remove(name)
                continue
            if step >= untimed_steps:
                samples[name].append(elapsed)
        step += 1
    return {name: values for name, values in samples.items() if name not in errors}, errors


def describe_error(error: Exception) -> str:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line}"[:300]
