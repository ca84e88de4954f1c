"""The command line for a newcomer: long work reports progress on any stream (a line every few
seconds where stderr is no terminal), every command finds the checkpoint the demo finds when
`--model` is not given, and a folder where one image is expected is named as such."""

import io

from _video_tiny import NUM_FRAMES, frame_folder, model_folder, object_centre, single_thread  # noqa: F401  (fixtures)
from edgetam_hf.cli import main
from edgetam_hf.cli.models import CHECKPOINT_VARIABLE
from edgetam_hf.cli.progress import progress


def _run(argv) -> int:
    try:
        return main([str(arg) for arg in argv])
    except SystemExit as exit_info:
        return exit_info.code


def test_progress_off_a_terminal_is_lines_not_carriage_returns():
    stream = io.StringIO()
    assert sum(progress(range(7), total=7, desc="tracking", unit="frame", stream=stream)) == 21
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and lines and "7/7" in lines[-1] and lines[-1].startswith("tracking")


def test_track_and_segment_everything_report_progress_into_a_log(model_folder, frame_folder, tmp_path, capsys):  # noqa: F811
    x, y = object_centre(1, 0)
    assert _run(["track", frame_folder, "--point", f"{x},{y}", "--model", model_folder, "--out", tmp_path / "track"]) == 0
    assert f"{NUM_FRAMES}/{NUM_FRAMES}" in capsys.readouterr().err.splitlines()[-1]
    assert _run(["segment-everything", frame_folder / "00000.png", "--model", model_folder, "--out", tmp_path / "all",
                 "--points-per-side", 4, "--points-per-batch", 8]) == 0
    assert "2/2" in capsys.readouterr().err  # 16 points in batches of 8


def test_commands_without_model_take_the_checkpoint_the_demo_finds(model_folder, frame_folder, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv(CHECKPOINT_VARIABLE, str(model_folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _run(["segment", frame_folder / "00000.png", "--point", "30,30", "--out", tmp_path / "segment"]) == 0
    assert f'"model": "{model_folder}"' in (tmp_path / "segment" / "scores.json").read_text()


def test_an_image_command_on_a_folder_says_it_expected_one_image(model_folder, frame_folder, tmp_path, capsys):  # noqa: F811
    assert _run(["segment-everything", frame_folder, "--model", model_folder, "--out", tmp_path / "all"]) == 2
    assert "is a folder; expected one image file" in capsys.readouterr().err
