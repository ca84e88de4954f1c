"""The `--out` folder of a command, reused across runs.

Each command lists the mask files it wrote in `scores.json`. A run into a folder that an earlier
run wrote first removes the masks that run listed, so that no stale `mask_2.png` or `00012.png`
of another prompt is left next to the new results (the other outputs are overwritten). Nothing
else in the folder is touched.
"""

import json
from pathlib import Path

SCORES_FILE = "scores.json"


def prepare_output_folder(out_dir: Path) -> Path:
    """Creates `out_dir` and removes the mask files an earlier run listed in its scores.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in _listed_masks(out_dir):
        path.unlink(missing_ok=True)
    return out_dir


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
