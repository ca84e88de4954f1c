"""Which dtype to compute in: `dtype="auto"` follows the hardware.

bfloat16 halves a frame's time where the hardware multiplies bfloat16 natively (a GPU, or a CPU
with avx512_bf16 or AMX; an Arm CPU with the bf16 extension). Where it does not (AVX2-only
laptops, some of our own machines), PyTorch emulates bfloat16 matrix products and convolutions
and a tracked frame of the released model took 44-96 s instead of ~0.6 s in float32: about 100x
slower, with nothing to tell the user. So "auto" takes bfloat16 only where it is native, and
asking for bfloat16 elsewhere warns, once per process.
"""

import functools
import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
# /proc/cpuinfo flags (x86: "flags", Arm: "Features") of CPUs that multiply bfloat16 natively.
NATIVE_BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})

# oneDNN, which runs PyTorch's bfloat16 matrix products and convolutions on a CPU, can be capped at
# an older instruction set (ONEDNN_MAX_CPU_ISA, e.g. CI's older-kernels pass); below these it
# emulates bfloat16 whatever the CPU has.
_ONEDNN_ISAS_WITHOUT_BFLOAT16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"})

_warned_about_emulation = False


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them; empty where they cannot be read (then
    bfloat16 counts as emulated: float32 is never the slow choice)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def has_native_bfloat16(device: torch.device | str) -> bool:
    """Whether `device` computes bfloat16 matrix products in hardware."""
    device = torch.device(device)
    if device.type == "cpu":
        onednn_isa = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).upper()
        return bool(cpu_flags() & NATIVE_BFLOAT16_CPU_FLAGS) and onednn_isa not in _ONEDNN_ISAS_WITHOUT_BFLOAT16
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return True  # mps, xpu, ...: their bfloat16 is the hardware's


def resolve_dtype(dtype: str | torch.dtype, device: torch.device | str) -> torch.dtype:
    """`dtype` ("auto", "float32", "bfloat16", "float16" or a torch dtype) -> the dtype to compute in
    on `device`: "auto" is bfloat16 where it is native and float32 elsewhere. An explicit bfloat16
    on a CPU that emulates it is kept, with a warning (once)."""
    if dtype == "auto":
        return torch.bfloat16 if has_native_bfloat16(device) else torch.float32
    if isinstance(dtype, str):
        if dtype not in DTYPE_CHOICES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)} or a torch dtype, got {dtype!r}")
        dtype = getattr(torch, dtype)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)} or a floating torch dtype, got {dtype!r}")
    warn_if_emulated(dtype, device)
    return dtype


def warn_if_emulated(dtype: torch.dtype, device: torch.device | str) -> None:
    """Warns once per process when bfloat16 is asked of a CPU that emulates it."""
    global _warned_about_emulation
    if _warned_about_emulation or dtype != torch.bfloat16 or has_native_bfloat16(device):
        return
    _warned_about_emulation = True
    logger.warning(
        "bfloat16 on this CPU is emulated (it has neither avx512_bf16 nor AMX): matrix products and "
        "convolutions run about 100x slower than in float32 (44-96 s per tracked frame of the released "
        "model, against ~0.6 s). Use float32, or dtype='auto', which picks bfloat16 only where the hardware has it."
    )


def computing_dtype(weights_dtype: torch.dtype, device: torch.device | str) -> torch.dtype:
    """The dtype a model's matrix products run in on `device`: autocast's where it is on (the
    CLI's reduced precisions), else its weights' (`from_pretrained(dtype=torch.bfloat16)`)."""
    device_type = torch.device(device).type
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else weights_dtype
