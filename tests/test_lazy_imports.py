"""What imports torch and transformers, and when: `import edgetam_hf`, `edgetam_hf.onnx`, the command
line's `--help` and argument errors, and its ONNX paths import neither (each checked in a fresh
interpreter); transformers' Auto classes still find our folders after a bare `import edgetam_hf`."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import edgetam_hf
from _video_tiny import frame_folder, object_centre, tiny_model, video_frames  # noqa: F401  (frame_folder: a fixture)
from edgetam_hf.cli import COMMANDS

SOURCE_ROOT = Path(edgetam_hf.__file__).parents[1]
TESTS_DIR = Path(__file__).parent
# Makes every later import of torch or transformers fail, as in an environment without them.
_BLOCK_TORCH = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name.split(".")[0])
sys.meta_path.insert(0, _Block())
"""


def _python(script: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCE_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def export_folder(tiny_video_export) -> Path:
    """The tiny video model's graphs (image and video): what `track` and `segment` run on."""
    return tiny_video_export


def test_the_package_help_and_argument_errors_import_no_torch():
    script = _BLOCK_TORCH + textwrap.dedent(f"""
        import json
        import edgetam_hf, edgetam_hf.onnx
        from edgetam_hf.cli import main
        codes = {{}}
        for argv in [["--help"], ["segment"], ["track", "v.mp4", "--point", "1"]] + [[name, "--help"] for name in {list(COMMANDS)!r}]:
            try:
                codes[" ".join(argv)] = main(argv)
            except SystemExit as exit_info:
                codes[" ".join(argv)] = exit_info.code
        print(json.dumps(codes))
    """)
    completed = _python(script)
    assert completed.returncode == 0, completed.stderr[-3000:]
    codes = json.loads(completed.stdout.strip().splitlines()[-1])
    assert codes.pop("segment") == codes.pop("track v.mp4 --point 1") == 2  # argparse's one-line errors
    assert set(codes.values()) == {0}, codes


def test_the_command_line_on_an_export_folder_imports_no_torch(export_folder, frame_folder, tmp_path):  # noqa: F811
    x, y = object_centre(1, 0)
    runs = [
        ["segment", frame_folder / "00000.png", "--point", f"{x},{y}", "--model", export_folder, "--out", tmp_path / "segment"],
        ["track", frame_folder, "--point", f"{x},{y}", "--model", export_folder, "--out", tmp_path / "track"],
        ["track", frame_folder, "--stream", "--point", f"{x},{y}", "--model", export_folder, "--out", tmp_path / "stream"],
        ["segment", frame_folder / "00000.png", "--point", f"{x},{y}", "--model", frame_folder, "--out", tmp_path / "no"],
    ]
    script = _BLOCK_TORCH + textwrap.dedent(f"""
        from edgetam_hf.cli import main
        print([main(argv) for argv in {[[str(arg) for arg in run] for run in runs]!r}])
    """)
    completed = _python(script)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().splitlines()[-1] == "[0, 0, 0, 2]", completed.stderr[-3000:]
    assert "segment: needs torch, which is not installed" in completed.stderr  # a model that is no export
    assert np.asarray(Image.open(tmp_path / "segment" / "masks.png")).shape == video_frames()[0].shape[:2]
    for name in ("track", "stream"):
        frames = json.loads((tmp_path / name / "scores.json").read_text())["frames"]
        assert [entry["frame"] for entry in frames] == list(range(len(video_frames())))


def test_a_torch_backed_name_without_torch_says_what_is_usable():
    completed = _python(_BLOCK_TORCH + "from edgetam_hf import EdgeTamModel\n")
    assert completed.returncode != 0
    assert "edgetam_hf.EdgeTamModel needs torch" in completed.stderr and "edgetam_hf.onnx" in completed.stderr


def test_auto_classes_find_our_folders_after_a_bare_import(tmp_path):
    from edgetam_hf import EdgeTamModel, EdgeTamProcessor

    from _image_tiny import tiny_config

    EdgeTamModel(tiny_config()).save_pretrained(tmp_path / "image")
    EdgeTamProcessor().save_pretrained(tmp_path / "image")
    tiny_model().save_pretrained(tmp_path / "video")
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(TESTS_DIR)!r})
        import _torchvision_shim  # this test environment's torchvision cannot load its C ops
        _torchvision_shim.install()
        import edgetam_hf
        assert "transformers" not in sys.modules and "edgetam_hf.modeling" not in sys.modules
        from transformers import AutoConfig, AutoModel, AutoModelForMaskGeneration, AutoProcessor
        found = [type(AutoConfig.from_pretrained({str(tmp_path / "image")!r})).__name__,
                 type(AutoModel.from_pretrained({str(tmp_path / "image")!r})).__module__,
                 type(AutoProcessor.from_pretrained({str(tmp_path / "image")!r})).__module__,
                 type(AutoModel.from_pretrained({str(tmp_path / "video")!r})).__module__,
                 type(AutoModelForMaskGeneration.from_pretrained({str(tmp_path / "video")!r})).__module__]
        print(json.dumps(found))
    """)
    completed = _python(script)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == [
        "EdgeTamConfig", "edgetam_hf.modeling", "edgetam_hf.processing", "edgetam_hf.modeling_video", "edgetam_hf.modeling",
    ]
