"""The docs run as written: every python block of README.md and docs/*.md, top to bottom in one
namespace per file, and every `edgetam-hf` command of their bash blocks.

They run in a temporary folder holding the files the docs name: `edgetam-hf/` (a converted folder:
the video model of a tiny config at the released 1024x1024 input size, so that the processors'
defaults fit), `truck.jpg` (1800x1200, as the prompts in the docs assume), `groceries.jpg`,
`dog.mp4`, `frames/`. `edgetam.pt` there is the same tiny model: a tiny checkpoint in Meta's format
cannot be made without Meta's code, so it is a converted folder under that name (`from_pretrained`
and `--model` take a folder and Meta's file by the same path; tests/test_loading.py and
tests/test_conversion.py cover the file). `edgetam-hf convert` needs Meta's file: its commands run
on the fixture checkpoint (EDGETAM_FIXTURES) in test_conversion_commands, and the push is
recorded, not sent.
"""

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgetam_hf import cli
from edgetam_hf.conversion import save_model_folder
from _video_tiny import single_thread, tiny_model  # noqa: F401  (single_thread: an autouse fixture)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A block this comment precedes is not run; the comment says why.
NOT_RUN = "<!-- tests/test_docs.py does not run this block"
_BLOCK = re.compile(r"(<!--[^\n]*-->\n)?```(\w+)\n(.*?)```", re.DOTALL)
_CONVERT = ("convert", "conversion/convert_edgetam_to_hf.py")


def _blocks(path: Path, language: str) -> list[str]:
    return [code for comment, lang, code in _BLOCK.findall(path.read_text()) if lang == language and not comment.startswith(NOT_RUN)]


def _commands(path: Path) -> list[list[str]]:
    """Each `edgetam-hf ...` line of the bash blocks as argv (after `edgetam-hf`), comments dropped."""
    commands = []
    for block in _blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():  # a trailing backslash continues the line
            words = shlex.split(line, comments=True)
            if words[:1] == ["edgetam-hf"]:
                commands.append(words[1:])
            elif words[:2] == ["python", "conversion/convert_edgetam_to_hf.py"]:
                commands.append(["convert", *words[2:]])
    return commands


@pytest.fixture(scope="module")
def docs_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    model = tiny_model(prompt_encoder_config={"hidden_size": 32, "image_size": 1024}, image_size=1024)
    save_model_folder(model, folder / "edgetam-hf")
    shutil.copytree(folder / "edgetam-hf", folder / "edgetam.pt")
    _scene(1800, 1200).save(folder / "truck.jpg")
    _scene(120, 90).save(folder / "groceries.jpg")
    (folder / "frames").mkdir()
    frames = [_scene(640, 480, shift=4 * index) for index in range(6)]
    for index, frame in enumerate(frames):
        frame.save(folder / "frames" / f"{index:05d}.jpg")
    _write_mp4(folder / "dog.mp4", frames[:3])
    return folder


def _scene(width: int, height: int, shift: int = 0) -> Image.Image:
    """Shaded background with two flat shapes; `shift` moves them (a video's motion)."""
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack([60 + 40 * np.sin(xx / 37), 90 + 30 * np.cos(yy / 29), 110 + 0 * xx], axis=-1)
    pixels[(yy - height // 3) ** 2 + (xx - width // 4 - shift) ** 2 < (height // 6) ** 2] = (220, 60, 50)
    pixels[height // 2 : height - 10, width // 2 + shift : width - 20] = (50, 90, 220)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _write_mp4(path: Path, frames: list[Image.Image]) -> None:
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height = frames[0].size
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode())


@pytest.fixture
def in_docs_folder(docs_folder, monkeypatch):
    monkeypatch.chdir(docs_folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("EDGETAM_CHECKPOINT", raising=False)
    return docs_folder


@pytest.mark.parametrize("path", [path for path in DOC_FILES if _blocks(path, "python")], ids=lambda path: path.name)
def test_python_blocks_run_in_order(path, in_docs_folder):
    namespace = {"__name__": f"docs_{path.stem}"}
    for index, block in enumerate(_blocks(path, "python")):
        try:
            exec(compile(block, f"{path.name} block {index + 1}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{path.name}, python block {index + 1} failed: {error!r}\n{block}") from error


_RUN_COMMANDS = [
    (path, argv) for path in DOC_FILES for argv in _commands(path) if argv[0] != _CONVERT[0]
]


@pytest.mark.parametrize(
    "path, argv", _RUN_COMMANDS, ids=[f"{path.name}: {' '.join(argv)}" for path, argv in _RUN_COMMANDS]
)
def test_commands_run(path, argv, in_docs_folder, capsys):
    status = cli.main(argv)
    assert status == 0, f"{path.name}: edgetam-hf {' '.join(argv)} -> {status}\n{capsys.readouterr().err}"


def test_every_documented_command_is_one_the_cli_has():
    for path in DOC_FILES:
        for argv in _commands(path):
            assert argv[0] in cli.COMMANDS, f"{path.name}: edgetam-hf {' '.join(argv)}"


def test_conversion_commands(fixtures_dir, tmp_path, monkeypatch):
    """The docs' `convert` lines on Meta's format (the fixture checkpoint as `edgetam.pt`); a push is recorded."""
    from edgetam_hf import conversion

    monkeypatch.chdir(tmp_path)
    (tmp_path / "edgetam.pt").symlink_to(fixtures_dir / "edgetam_random_seed0.pt")
    pushed = []
    monkeypatch.setattr(conversion, "push_to_hub", lambda folder, repo_id, **options: pushed.append(repo_id) or "recorded")
    commands = [argv for path in DOC_FILES for argv in _commands(path) if argv[0] == "convert"]
    assert commands, "the docs show the conversion"
    for argv in commands:
        assert cli.main([*argv, "--overwrite"]) == 0, argv
    assert pushed == [argv[argv.index("--push-to-hub") + 1] for argv in commands if "--push-to-hub" in argv]
