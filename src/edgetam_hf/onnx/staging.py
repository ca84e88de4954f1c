"""`staged_folder(out_dir)`: an export folder appears whole or not at all."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_folder(out_dir) -> Iterator[Path]:
    """Yields a temporary sibling of `out_dir` to write the export into, renamed to `out_dir` when
    the block succeeds and removed when it fails (a malformed checkpoint, a full disk, Ctrl-C), so
    no half-written folder is left behind. `out_dir` must not exist yet (a ValueError)."""
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists():
        raise ValueError(f"{out_dir} already exists; choose a new output folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        yield staging
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
