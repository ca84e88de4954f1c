"""Writing a folder whole or not at all: build it in a hidden sibling, rename it into place."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def check_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"{output_dir} exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise ValueError(f"{output_dir} exists and is not empty; pass overwrite=True (--overwrite) to replace it")


@contextlib.contextmanager
def staging_dir(output_dir: Path):
    """A hidden temporary folder next to `output_dir` (same file system, so the final rename is
    atomic), removed on any failure together with the parent folders it had to create."""
    created_parent = _first_missing_ancestor(output_dir.parent)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".partial", dir=output_dir.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_parent is not None:
            shutil.rmtree(created_parent, ignore_errors=True)
        raise


def _first_missing_ancestor(path: Path) -> Path | None:
    missing = None
    while not path.exists():
        missing, path = path, path.parent
    return missing


def move_into_place(staging: Path, output_dir: Path) -> None:
    """Renames `staging` to `output_dir`; an existing (allowed) folder is replaced only then."""
    staging.chmod(0o755)  # mkdtemp makes it private to the user
    previous = None
    if output_dir.exists():
        previous = output_dir.with_name(f".{output_dir.name}.{os.getpid()}.replaced")
        output_dir.rename(previous)
    try:
        staging.rename(output_dir)
    except BaseException:
        if previous is not None:
            previous.rename(output_dir)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
