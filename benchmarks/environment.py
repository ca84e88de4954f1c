"""The machine a run happens on (recorded with every result) and the optional competitors' imports."""

import importlib.util
import os
import platform
import subprocess
import warnings
from pathlib import Path

import torch

REPOSITORY = Path(__file__).resolve().parent.parent
# The tests' torchvision shim: transformers' EdgeTam builds its trunk with timm, which imports
# torchvision, whose wheel in this workplace fails to import until two operator schemas exist.
_TORCHVISION_SHIM = REPOSITORY / "tests" / "_torchvision_shim.py"


def set_threads(threads: int) -> None:
    """Fixes torch's intra-op thread count: results are only comparable at a known thread count."""
    torch.set_num_threads(threads)


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (runnable processes, all users), where Linux reports them."""
    try:
        return [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def machine_loaded(before: list[float] | None, after: list[float] | None, threads: int) -> bool | None:
    """Whether something besides this run competed for the CPU.

    Before the run, anything above an idle machine's ~0 is someone else's. After it, the run's own
    `threads` runnable threads are in the 1-minute average, so only the excess counts. Half a busy
    core of slack allows for ordinary background noise.
    """
    if before is None or after is None:
        return None
    return before[0] > 0.5 or after[0] > threads + 0.5


def machine_description(device: torch.device) -> dict:
    info = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": version_of("transformers"),
        "timm": version_of("timm"),
        "git_commit": _git_commit(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def import_transformers_edgetam():
    """transformers' module with its EdgeTam classes importable, or the reason it is not (a string)."""
    try:
        import transformers

        # Fails here (not inside a case) when timm or transformers' EdgeTam classes are missing.
        from transformers import EdgeTamModel, EdgeTamVideoModel, Sam2VideoProcessor  # noqa: F401
        from transformers.models.timm_wrapper import TimmWrapperConfig  # noqa: F401
        import timm  # noqa: F401
    except Exception as error:  # noqa: BLE001 - any import failure means: run without this column
        return None, f"transformers' EdgeTam cannot be imported ({type(error).__name__}: {error})"
    return transformers, None


def import_original_sam2():
    """Meta's `sam2` package (the EdgeTAM release), or the reason it is not importable."""
    # The original draws progress bars on every frame load and propagation; they would bury the report.
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        with warnings.catch_warnings():  # hydra / omegaconf deprecation notices on import
            warnings.simplefilter("ignore")
            import sam2
            from sam2.build_sam import build_sam2  # noqa: F401
    except Exception as error:  # noqa: BLE001 - any import failure means: run without this column
        return None, f"Meta's original sam2 package is not importable ({type(error).__name__}: {error})"
    return sam2, None


def install_torchvision_shim() -> None:
    """Lets torchvision import; must run before edgetam_hf (transformers) or timm is imported."""
    if not _TORCHVISION_SHIM.exists():
        return  # an installed project without its tests: torchvision must import on its own
    spec = importlib.util.spec_from_file_location("_torchvision_shim", _TORCHVISION_SHIM)
    shim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shim)
    shim.install()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version_of(module_name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module_name)
    except Exception:  # noqa: BLE001 - not installed
        return None


def _git_commit() -> str | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPOSITORY, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}{' + uncommitted changes' if dirty.strip() else ''}"
