"""Peak memory of one call, and the memory a process holds, on CPU and on CUDA.

CPU (Linux): tracemalloc sees only Python's own allocator, not torch's tensors, and getrusage's
max RSS cannot be reset, so it would need a fresh process per case. Instead, in this process:
  1. `malloc_trim(0)` hands the heap pages freed by earlier calls back to the kernel, so the
     resident set (VmRSS) is what is live now, and the call must fault in every page it uses;
  2. writing "5" to /proc/self/clear_refs resets the kernel's high-water mark VmHWM to VmRSS;
  3. the call runs once; its peak is VmHWM - VmRSS at the reset: the memory the call needed on
     top of the models, inputs and caches already held.
The figure can be low by a few MiB: heap space that malloc keeps (chunks smaller than a page)
is reused without a page fault. CUDA: the growth of `torch.cuda.max_memory_allocated` over the
allocated memory at the start (tensors only; not the caching allocator's reserve or the context).
"""

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from pathlib import Path

import torch

MIB = 2**20
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESET_PEAK_RSS = "5"  # see proc(5): "5" resets the peak resident set size (VmHWM)

CPU_METHOD = "VmHWM - VmRSS around the call, after malloc_trim(0) and a VmHWM reset via /proc/self/clear_refs"
CUDA_METHOD = "torch.cuda.max_memory_allocated - memory_allocated at the start"


def method_for(device: torch.device) -> str | None:
    """How peaks are measured on `device`; None where they cannot be (CPU without Linux's /proc)."""
    if device.type == "cuda":
        return CUDA_METHOD
    return CPU_METHOD if _can_reset_peak_rss() else None


def peak_memory_mib(call: Callable[[], object], device: torch.device) -> float | None:
    """Memory the call needs above what is held before it, in MiB; None when it cannot be measured."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        call()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - start) / MIB
    if not _can_reset_peak_rss():
        return None
    _release_free_heap()
    _CLEAR_REFS.write_text(_RESET_PEAK_RSS)
    start = _status_kib("VmRSS")
    call()
    return (_status_kib("VmHWM") - start) * 1024 / MIB


def held_memory_mib(device: torch.device) -> float | None:
    """Memory the process holds now: live tensors on CUDA; the resident set, freed heap released, on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.memory_allocated(device) / MIB
    if not _STATUS.exists():
        return None
    _release_free_heap()
    return _status_kib("VmRSS") * 1024 / MIB


@functools.cache
def _can_reset_peak_rss() -> bool:
    try:
        _CLEAR_REFS.write_text(_RESET_PEAK_RSS)
        _status_kib("VmHWM")
    except (OSError, KeyError):
        return False
    return True


def _status_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])  # "VmHWM:   123456 kB"
    raise KeyError(field)


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None (another C library): then freed pages may stay resident."""
    library = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(library), "malloc_trim", None) if library else None
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
    return trim


def _release_free_heap() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
