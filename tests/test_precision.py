"""dtype="auto" follows the CPU's bfloat16 support; bfloat16 where it is emulated warns once."""

import logging

import pytest
import torch

from _image_tiny import tiny_config
from edgetam_hf import EdgeTamModel, precision

NATIVE = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
EMULATED = frozenset({"avx2", "fma"})


@pytest.fixture
def cpu_with(monkeypatch):
    """Pretends the CPU has the given flags, oneDNN uncapped, the once-only warning not yet given."""
    monkeypatch.setattr(precision, "_warned_about_emulation", False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)

    def set_flags(flags: frozenset[str]) -> None:
        monkeypatch.setattr(precision, "cpu_flags", lambda: flags)

    return set_flags


def _emulation_warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if "emulated" in record.getMessage()]


def test_auto_takes_bfloat16_only_where_the_cpu_has_it(cpu_with):
    cpu_with(NATIVE)
    assert precision.resolve_dtype("auto", "cpu") == torch.bfloat16
    cpu_with(EMULATED)
    assert precision.resolve_dtype("auto", "cpu") == torch.float32
    cpu_with(frozenset({"fp", "asimd", "bf16"}))  # an Arm CPU with the bf16 extension
    assert precision.resolve_dtype("auto", "cpu") == torch.bfloat16


def test_a_cpu_whose_onednn_is_capped_below_bfloat16_emulates_it(cpu_with, monkeypatch):
    cpu_with(NATIVE)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # as CI's older-kernels pass runs
    assert precision.resolve_dtype("auto", "cpu") == torch.float32
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_amx")
    assert precision.resolve_dtype("auto", "cpu") == torch.bfloat16


def test_the_flags_of_this_machine_are_read():
    flags = precision.cpu_flags()
    assert isinstance(flags, frozenset)


def test_bfloat16_on_a_cpu_that_emulates_it_warns_once(cpu_with, caplog):
    cpu_with(EMULATED)
    with caplog.at_level(logging.WARNING, logger="edgetam_hf.precision"):
        assert precision.resolve_dtype("bfloat16", "cpu") == torch.bfloat16  # the user's choice is kept
        assert precision.resolve_dtype(torch.bfloat16, "cpu") == torch.bfloat16
    (message,) = _emulation_warnings(caplog)
    assert "100x slower" in message and "float32" in message and "dtype='auto'" in message


def test_no_warning_where_bfloat16_is_native_or_not_asked(cpu_with, caplog):
    cpu_with(NATIVE)
    with caplog.at_level(logging.WARNING, logger="edgetam_hf.precision"):
        precision.resolve_dtype("bfloat16", "cpu")
        cpu_with(EMULATED)
        precision.resolve_dtype("float32", "cpu")
        precision.resolve_dtype("auto", "cpu")
    assert not _emulation_warnings(caplog)


@pytest.mark.parametrize("dtype", ["half", torch.int8, None])
def test_an_unknown_dtype_is_refused(dtype):
    with pytest.raises(ValueError, match=r"dtype must be one of auto, float32, bfloat16, float16"):
        precision.resolve_dtype(dtype, "cpu")


@torch.no_grad()
def test_the_model_warns_once_when_it_computes_in_emulated_bfloat16(cpu_with, caplog):
    cpu_with(EMULATED)
    model = EdgeTamModel(tiny_config(image_size=64)).eval()  # small: bfloat16 is slow where emulated (CI)
    pixel_values = torch.zeros(1, 3, 64, 64)
    with caplog.at_level(logging.WARNING, logger="edgetam_hf.precision"):
        model.get_image_embeddings(pixel_values)  # float32: nothing to say
        assert not _emulation_warnings(caplog)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the CLI's way
            model.get_image_embeddings(pixel_values)
        model.to(torch.bfloat16).get_image_embeddings(pixel_values)  # from_pretrained(dtype=...)'s way
    assert len(_emulation_warnings(caplog)) == 1
