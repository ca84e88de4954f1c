"""A `track` run killed outright (no Ctrl-C handling runs) leaves no frame in `--out` that the next
run into the same folder could be taken to have written: runs write into a fresh hidden folder and
move their files in at the end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from _video_tiny import frame_folder, model_folder, object_centre, single_thread, video_frames  # noqa: F401  (fixtures)
import edgetam_hf
from edgetam_hf.cli import main

TESTS_DIR = Path(__file__).parent
# Runs `edgetam-hf ARGS` and kills itself with SIGKILL as it is about to write its 3rd mask.
_KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import _torchvision_shim
_torchvision_shim.install()
from edgetam_hf.cli import main, track
written = []
save = track.save_label_png
def save_then_die(labels, path):
    if len(written) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    written.append(path)
    save(labels, path)
track.save_label_png = save_then_die
main(sys.argv[1:])
"""


def test_a_killed_run_leaves_nothing_the_next_run_could_be_taken_to_have_written(model_folder, frame_folder, tmp_path):  # noqa: F811
    frames = frame_folder
    out = tmp_path / "out"
    x, y = object_centre(1, 0)
    argv = ["track", str(frames), "--point", f"{x},{y}", "--model", str(model_folder), "--device", "cpu", "--out", str(out)]

    source_root = str(Path(edgetam_hf.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source_root, os.environ.get("PYTHONPATH", "")])}
    killed = subprocess.run([sys.executable, "-c", _KILLED_RUN.format(tests=str(TESTS_DIR)), *argv], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert not list(out.glob("*.png")), "the killed run's masks are in --out"
    assert len(list(out.glob(".*/0000[01].png"))) == 2  # it wrote them where they are not taken for results

    assert main([*argv, "--max-frames", "1"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    names = sorted(path.name for path in out.iterdir())
    assert [name for name in names if not name.startswith("overlay.")] == ["00000.png", "scores.json", "scores.jsonl"]
    assert len(names) == 4  # and one overlay video; the killed run's hidden folder is gone
    assert [entry["mask"] for entry in scores["frames"]] == ["00000.png"]
    assert np.asarray(Image.open(out / "00000.png")).shape == video_frames()[0].shape[:2]
