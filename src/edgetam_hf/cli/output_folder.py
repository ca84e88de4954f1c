"""The `--out` folder of a command, reused across runs.

Each command lists the mask files it wrote in `scores.json`. A run into a folder that an earlier
run wrote first removes the masks that run listed, so that no stale `mask_2.png` or `00012.png`
of another prompt is left next to the new results (the other outputs are overwritten). Nothing
else in the folder is touched.

A long run (`track`) writes into a fresh hidden folder inside `--out` and moves its files in at the
end (also when stopped by Ctrl-C or an error): a run killed outright leaves only that hidden folder,
which the next run removes, so no run's masks ever sit beside another run's scores.json.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

SCORES_FILE = "scores.json"
_RUN_FOLDER_PREFIX = ".unfinished-run-"


def prepare_output_folder(out_dir: Path) -> Path:
    """Creates `out_dir` and removes the mask files an earlier run listed in its scores.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in _listed_masks(out_dir):
        path.unlink(missing_ok=True)
    return out_dir


def fresh_run_folder(out_dir: Path) -> Path:
    """A new empty folder inside `out_dir` for a run's files until `publish_run`; the folders of
    runs killed before they published are removed first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(_RUN_FOLDER_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=_RUN_FOLDER_PREFIX, dir=out_dir))


def publish_run(run_dir: Path, out_dir: Path) -> None:
    """Moves a run's files from `run_dir` into `out_dir`, after the masks the earlier run listed
    are removed; scores.json last, so that it never lists masks that are not there yet."""
    prepare_output_folder(out_dir)
    for path in sorted(run_dir.iterdir(), key=lambda path: path.name == SCORES_FILE):
        os.replace(path, out_dir / path.name)
    run_dir.rmdir()


def _listed_masks(out_dir: Path) -> list[Path]:
    try:
        scores = json.loads((out_dir / SCORES_FILE).read_text())
    except (OSError, ValueError):
        return []  # no earlier run, or not one of ours
    folder = out_dir.resolve()
    paths = []
    for name in _mask_entries(scores):
        path = (out_dir / name).resolve()
        if path.suffix == ".png" and folder in path.parents:  # never outside the folder
            paths.append(path)
    return paths


def _mask_entries(value) -> list[str]:
    """Every `"mask": "<file>"` entry, at any depth (segment: objects, track: frames, everything: masks)."""
    if isinstance(value, dict):
        found = [value["mask"]] if isinstance(value.get("mask"), str) else []
        return found + [name for item in value.values() for name in _mask_entries(item)]
    if isinstance(value, list):
        return [name for item in value for name in _mask_entries(item)]
    return []
