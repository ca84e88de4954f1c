"""The `edgetam-hf` command line end to end on a tiny model and tiny media: the files each
subcommand writes, that they hold what the Python API computes, and one-line errors."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _video_tiny import NUM_FRAMES, VIDEO_HEIGHT, VIDEO_WIDTH, decode_mp4, object_centre, tiny_model, tiny_processor, video_frames, write_mp4
from _video_tiny import frame_folder, model_folder, single_thread  # noqa: F401  (fixtures; single_thread is autouse)
from edgetam_hf.cli import main
from edgetam_hf.cli import models as cli_models
from edgetam_hf.cli.media import davis_palette, has_av

TESTS_DIR = Path(__file__).parent
BOX_OF_OBJECT_2 = [76, 22, 104, 48]  # around ellipse 2 on frame 0


# The runs compared with the API's float32 results (the default, auto, is bfloat16 where the CPU has it).
FLOAT32 = ("--dtype", "float32")


def run_cli(argv: list[str]) -> int:
    try:
        return main([str(arg) for arg in argv])
    except SystemExit as exit_info:  # argparse's own errors
        return exit_info.code


def _prompts_for_two_objects(frame: int = 0) -> list[str]:
    x, y = object_centre(1, frame)
    return ["--object", "1", "--point", f"{x},{y}", "--object", "2", "--box", ",".join(map(str, BOX_OF_OBJECT_2))]


def _indexed_png(path: Path) -> np.ndarray:
    image = Image.open(path)
    assert image.mode == "P" and image.getpalette()[: 3 * 256] == davis_palette()
    return np.asarray(image)


# ---------------------------------------------------------------------------- segment


def test_a_reused_out_folder_keeps_no_stale_masks(model_folder, frame_folder, tmp_path):
    """A second run with fewer objects removes the masks the first run listed, and nothing else."""
    out = tmp_path / "segment"
    common = ["segment", frame_folder / "00000.png", "--model", model_folder, "--device", "cpu", "--out", out]
    assert run_cli([*common, *_prompts_for_two_objects()]) == 0
    assert (out / "mask_2.png").is_file()
    (out / "notes.txt").write_text("the user's own file")
    x, y = object_centre(1, 0)
    assert run_cli([*common, "--point", f"{x},{y}"]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["mask_1.png", "masks.png", "notes.txt", "overlay.png", "scores.json"]


def test_track_with_an_image_only_folder_says_how_to_convert(frame_folder, tmp_path, capsys):
    from _image_tiny import tiny_image_model

    folder = tmp_path / "image_only"
    tiny_image_model().save_pretrained(folder)
    capsys.readouterr()  # saving's progress bar
    assert run_cli(["track", frame_folder, "--point", "10,10", "--model", folder, "--out", tmp_path / "out"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "image model only" in error and "edgetam-hf convert" in error


def test_top_level_help_imports_no_command(monkeypatch, capsys):
    """`edgetam-hf --help` lists the commands from the table alone (their modules import torch)."""
    import importlib

    from edgetam_hf import cli

    imported = []
    monkeypatch.setattr(importlib, "import_module", lambda name, *args: imported.append(name))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0 and imported == []
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in cli.COMMANDS)


def test_segment_writes_the_masks_the_api_computes(model_folder, frame_folder, tmp_path):
    out = tmp_path / "segment"
    image_path = frame_folder / "00000.png"
    assert run_cli(["segment", image_path, "--model", model_folder, "--device", "cpu", "--out", out, *FLOAT32,
                    *_prompts_for_two_objects()]) == 0

    scores = json.loads((out / "scores.json").read_text())
    assert [entry["object"] for entry in scores["objects"]] == [1, 2]
    click_object, box_object = scores["objects"]
    assert len(click_object["iou_scores"]) == 3 and len(box_object["iou_scores"]) == 1  # one click: 3 candidates

    from edgetam_hf import EdgeTamImageProcessor, EdgeTamModel, EdgeTamProcessor

    model = EdgeTamModel.from_pretrained(model_folder).eval()
    image_processor = EdgeTamImageProcessor(size={"height": 128, "width": 128}, mask_size={"height": 32, "width": 32})
    processor = EdgeTamProcessor(image_processor=image_processor, target_size=128)
    inputs = processor(images=Image.open(image_path).convert("RGB"), input_boxes=[[BOX_OF_OBJECT_2]])
    with torch.no_grad():
        outputs = model(**inputs, multimask_output=False)
    expected = processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"])[0][0, 0].numpy()
    written = np.asarray(Image.open(out / "mask_2.png"))
    assert written.shape == (VIDEO_HEIGHT, VIDEO_WIDTH) and set(np.unique(written)) <= {0, 255}
    np.testing.assert_array_equal(written == 255, expected)
    assert box_object["area"] == int(expected.sum()) > 0

    labels = _indexed_png(out / "masks.png")
    assert set(np.unique(labels)) <= {0, 1, 2}
    assert np.all(np.asarray(Image.open(out / f"mask_{labels.max()}.png"))[labels == labels.max()] == 255)
    assert Image.open(out / "overlay.png").size == (VIDEO_WIDTH, VIDEO_HEIGHT)


def test_segment_everything_writes_every_kept_mask(model_folder, frame_folder, tmp_path):
    out = tmp_path / "everything"
    assert run_cli(["segment-everything", frame_folder / "00000.png", "--model", model_folder, "--out", out,
                    "--points-per-side", 4, "--pred-iou-thresh", 0, "--stability-score-thresh", 0]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert len(scores["masks"]) > 0
    assert sorted(path.name for path in (out / "masks").iterdir()) == [f"{i:03d}.png" for i in range(len(scores["masks"]))]
    for entry in scores["masks"]:
        assert np.count_nonzero(np.asarray(Image.open(out / entry["mask"]))) == entry["area"]
    assert Image.open(out / "overlay.png").size == (VIDEO_WIDTH, VIDEO_HEIGHT)


# ---------------------------------------------------------------------------- track


def _api_labels(reverse: bool = False, start: int = 0, max_frames: int | None = None, frames=None) -> dict[int, np.ndarray]:
    """What the CLI should write: the two objects prompted as `_prompts_for_two_objects(start)`."""
    model, processor = tiny_model(), tiny_processor()
    session = processor.init_video_session(video_frames() if frames is None else frames)
    processor.add_inputs_to_inference_session(session, start, 1, input_points=[[[object_centre(1, start)]]], input_labels=[[[1]]])
    processor.add_inputs_to_inference_session(session, start, 2, input_boxes=[[BOX_OF_OBJECT_2]])
    model(session, frame_idx=start)
    labels = {}
    count = None if max_frames is None else max_frames - 1
    for output in model.propagate_in_video_iterator(session, start, count, reverse=reverse):
        logits = processor.post_process_masks([output.pred_masks], [[VIDEO_HEIGHT, VIDEO_WIDTH]], binarize=False)[0][:, 0]
        best, row = logits.max(dim=0)
        labels[output.frame_idx] = np.where(best.numpy() > 0, np.array(output.object_ids)[row.numpy()], 0)
    return labels


def test_track_a_frame_folder_writes_davis_masks_an_overlay_and_scores(model_folder, frame_folder, tmp_path, monkeypatch):
    monkeypatch.setattr("edgetam_hf.cli.media.has_av", lambda: False)  # the GIF path
    out = tmp_path / "track"
    assert run_cli(["track", frame_folder, "--model", model_folder, "--out", out, *FLOAT32, *_prompts_for_two_objects()]) == 0

    expected = _api_labels()
    for frame_idx in range(NUM_FRAMES):
        labels = _indexed_png(out / f"{frame_idx:05d}.png")
        np.testing.assert_array_equal(labels, expected[frame_idx])
    assert {1, 2} <= set(np.unique(np.concatenate([labels.ravel() for labels in expected.values()])))

    overlay = Image.open(out / "overlay.gif")
    assert overlay.n_frames == NUM_FRAMES and overlay.size == (VIDEO_WIDTH, VIDEO_HEIGHT)
    scores = json.loads((out / "scores.json").read_text())
    assert [entry["frame"] for entry in scores["frames"]] == list(range(NUM_FRAMES))
    assert scores["objects"] == [1, 2] and set(scores["frames"][1]["object_score_logits"]) == {"1", "2"}


def test_track_reverse_with_max_frames(model_folder, frame_folder, tmp_path):
    out = tmp_path / "reverse"
    start = NUM_FRAMES - 1
    assert run_cli(["track", frame_folder, "--model", model_folder, "--out", out, *FLOAT32, "--frame", start,
                    *_prompts_for_two_objects(start), "--reverse", "--max-frames", 3]) == 0
    expected = _api_labels(reverse=True, start=start, max_frames=3)
    assert sorted(expected) == [2, 3, 4]
    assert sorted(path.name for path in out.glob("0*.png")) == ["00002.png", "00003.png", "00004.png"]
    for frame_idx, labels in expected.items():
        np.testing.assert_array_equal(_indexed_png(out / f"{frame_idx:05d}.png"), labels)
    assert json.loads((out / "scores.json").read_text())["direction"] == "reverse"


def test_track_in_bfloat16_runs_under_autocast(model_folder, frame_folder, tmp_path):
    out = tmp_path / "bf16"
    assert run_cli(["track", frame_folder, "--model", model_folder, "--out", out, "--dtype", "bfloat16",
                    *_prompts_for_two_objects()]) == 0
    for frame_idx in range(NUM_FRAMES):
        assert set(np.unique(_indexed_png(out / f"{frame_idx:05d}.png"))) <= {0, 1, 2}


needs_av = pytest.mark.skipif(not has_av(), reason="PyAV (the video extra) is not installed")


@needs_av
def test_track_an_mp4_writes_an_mp4_overlay(model_folder, tmp_path):
    video_path = tmp_path / "clip.mp4"
    write_mp4(video_path, video_frames())
    out = tmp_path / "track_mp4"
    assert run_cli(["track", video_path, "--model", model_folder, "--out", out, *_prompts_for_two_objects()]) == 0
    assert sorted(path.name for path in out.glob("0*.png")) == [f"{i:05d}.png" for i in range(NUM_FRAMES)]
    frames = decode_mp4(out / "overlay.mp4")
    assert len(frames) == NUM_FRAMES and frames[0].shape == (VIDEO_HEIGHT, VIDEO_WIDTH, 3)


@needs_av
def test_track_stream_writes_what_the_api_computes(model_folder, tmp_path):
    video_path = tmp_path / "clip.mp4"
    write_mp4(video_path, video_frames())
    out = tmp_path / "stream"
    assert run_cli(["track", video_path, "--stream", "--model", model_folder, "--out", out, *FLOAT32, *_prompts_for_two_objects()]) == 0
    expected = _api_labels(frames=decode_mp4(video_path))
    for frame_idx in range(NUM_FRAMES):
        np.testing.assert_array_equal(_indexed_png(out / f"{frame_idx:05d}.png"), expected[frame_idx])
    lines = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert lines[0]["objects"] == [1, 2] and [line["frame"] for line in lines[1:]] == list(range(NUM_FRAMES))
    assert json.loads((out / "scores.json").read_text())["frames"] == lines[1:]
    assert len(decode_mp4(out / "overlay.mp4")) == NUM_FRAMES


class _Stdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


@needs_av
def test_track_stream_of_raw_frames_on_stdin_prompted_on_a_later_frame(model_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Stdin(b"".join(frame.tobytes() for frame in video_frames())))
    out = tmp_path / "stdin"
    size = f"{VIDEO_WIDTH}x{VIDEO_HEIGHT}"
    assert run_cli(["track", "-", "--stream", "--size", size, "--model", model_folder, "--out", out,
                    "--frame", 1, *_prompts_for_two_objects(1)]) == 0
    assert sorted(path.name for path in out.glob("0*.png")) == [f"{i:05d}.png" for i in range(1, NUM_FRAMES)]
    assert len(decode_mp4(out / "overlay.mp4")) == NUM_FRAMES  # the frame before the prompt too


@needs_av
def test_ctrl_c_keeps_everything_written_so_far(model_folder, tmp_path, monkeypatch):
    from edgetam_hf.cli import media

    decoded = media.LiveSource.frames

    def interrupted_after_three(source):
        for index, frame in enumerate(decoded(source)):
            if index == 3:
                raise KeyboardInterrupt
            yield frame

    monkeypatch.setattr(media.LiveSource, "frames", interrupted_after_three)
    video_path = tmp_path / "clip.mp4"
    write_mp4(video_path, video_frames())
    out = tmp_path / "interrupted"
    assert run_cli(["track", video_path, "--stream", "--model", model_folder, "--out", out, *_prompts_for_two_objects()]) == 130
    assert sorted(path.name for path in out.glob("0*")) == ["00000.png", "00001.png", "00002.png"]
    assert [entry["frame"] for entry in json.loads((out / "scores.json").read_text())["frames"]] == [0, 1, 2]
    assert len((out / "scores.jsonl").read_text().splitlines()) == 4
    assert len(decode_mp4(out / "overlay.mp4")) == 3


@pytest.mark.parametrize(
    "argv, stdin, message",
    [
        (["-", "--stream"], b"", "--size WxH is needed"),
        (["-", "--stream", "--size", "4x2"], bytes(24 + 5), "frame 1 on stdin has 5 bytes, a 4x2 RGB24 frame has 24"),
        (["-", "--size", "4x2"], b"", "are for --stream"),
        (["{video}", "--stream", "--reverse"], b"", "a stream is tracked forward"),
    ],
)
def test_track_stream_bad_input(model_folder, frame_folder, tmp_path, monkeypatch, capsys, argv, stdin, message):
    monkeypatch.setattr(sys, "stdin", _Stdin(stdin))
    argv = [str(frame_folder) if arg == "{video}" else arg for arg in argv]
    assert run_cli(["track", *argv, "--model", model_folder, "--out", tmp_path / "bad", "--point", "1,1"]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------- demo


def test_demo_without_a_checkpoint_says_what_it_runs_and_writes_overlays(tmp_path, monkeypatch, capsys):
    """The no-checkpoint branch: the bundled tiny models, the image one for the image and the video
    one for the clip, each named with its held-out figures."""
    from edgetam_hf.cli.demo import BUNDLED_MODEL_NAME, BUNDLED_VIDEO_MODEL_NAME

    monkeypatch.chdir(tmp_path)  # no ./edgetam.pt
    monkeypatch.delenv("EDGETAM_CHECKPOINT", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr("edgetam_hf.cli.demo.find_checkpoint", lambda: None)
    assert run_cli(["demo", "--device", "cpu", "--out", tmp_path / "demo"]) == 0
    printed = capsys.readouterr().out
    assert "TINY EdgeTAM" in printed and "rendered flat shapes ONLY" in printed and "Meta's checkpoint" in printed
    assert "TINY video model" in printed and "random memory weights" in printed and "rendered moving shapes ONLY" in printed
    image_dir, video_dir = tmp_path / "demo" / "image", tmp_path / "demo" / "video"
    assert Image.open(image_dir / "overlay.png").size == (640, 480)
    image_about = json.loads((image_dir / "scores.json").read_text())
    assert image_about["model"] == BUNDLED_MODEL_NAME and image_about["random_weights"] is False
    # The bundled model reads its prompt: each box gets its own shape, not one mask for both.
    disc_mask, rectangle_mask = (np.asarray(Image.open(image_dir / f"mask_{obj_id}.png")) > 0 for obj_id in (1, 2))
    disc_centre, rectangle_centre = (170, 200), (335, 470)  # (row, column) on the sample image
    assert disc_mask[disc_centre] and not disc_mask[rectangle_centre]
    assert rectangle_mask[rectangle_centre] and not rectangle_mask[disc_centre]
    assert (disc_mask & rectangle_mask).sum() < 0.1 * min(disc_mask.sum(), rectangle_mask.sum())
    overlay = next(video_dir.glob("overlay.*"))
    frames = Image.open(overlay).n_frames if overlay.suffix == ".gif" else _mp4_frame_count(overlay)
    assert frames == 16 and len(list(video_dir.glob("0*.png"))) == 16
    assert json.loads((video_dir / "scores.json").read_text())["model"] == BUNDLED_VIDEO_MODEL_NAME


def test_the_sample_clip_ground_truth_is_the_visible_pixels_of_each_shape():
    """scripts/evaluate_tiny_video.py scores the demo's clip against these masks."""
    from edgetam_hf.sample_media import render_sample_frame, render_sample_frame_masks

    colours = [(220, 60, 50), (50, 90, 220), (70, 190, 90)]  # disc, rectangle, triangle (ids 1, 2, 3)
    for frame_idx in (0, 15):  # by frame 15 the triangle and the rectangle hide part of the disc
        pixels = np.asarray(render_sample_frame(frame_idx))
        masks = render_sample_frame_masks(frame_idx)
        assert masks.shape == (3, 480, 640) and masks.sum(0).max() == 1
        for mask, colour in zip(masks, colours, strict=True):
            assert np.array_equal(mask, (pixels == colour).all(-1))
    assert render_sample_frame_masks(15)[0].sum() < render_sample_frame_masks(0)[0].sum()


def _mp4_frame_count(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_demo_finds_a_checkpoint_named_by_the_environment(tmp_path, monkeypatch):
    from edgetam_hf.cli.demo import find_checkpoint

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.delenv("EDGETAM_CHECKPOINT", raising=False)
    assert find_checkpoint() is None
    (tmp_path / "edgetam.pt").write_bytes(b"")
    assert find_checkpoint() == "edgetam.pt"
    monkeypatch.setenv("EDGETAM_CHECKPOINT", str(tmp_path / "edgetam.pt"))
    assert find_checkpoint() == str(tmp_path / "edgetam.pt")


# ---------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def broken_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("broken") / "broken.mp4"
    path.write_bytes(b"not a video at all")
    return path


BAD_INPUTS = {
    "missing image": (["segment", "{missing}/image.jpg", "--point", "5,5"], "no such file"),
    "missing video": (["track", "{missing}/clip.mp4", "--point", "5,5"], "no such file"),
    "unreadable video": (["track", "{broken_video}", "--point", "5,5"], "broken.mp4"),
    "point outside the frame": (["segment", "{frame}", "--point", "500,10"], "outside the image"),
    "point outside a video frame": (["track", "{frames}", "--point", "10,-3"], "outside the video frame"),
    "box with x1 < x0": (["segment", "{frame}", "--box", "60,10,20,40"], "X0 < X1"),
    "object id 0": (["track", "{frames}", "--object", "0", "--point", "5,5"], "object id"),
    "object id not a number": (["track", "{frames}", "--object", "car", "--point", "5,5"], "object id"),
    "frame past the end": (["track", "{frames}", "--frame", "9", "--point", "5,5"], "has 5 frames"),
    "two boxes for one object": (["segment", "{frame}", "--box", "1,1,9,9", "--box", "2,2,8,8"], "already has a box"),
    "no prompt": (["segment", "{frame}"], "at least one prompt"),
    "missing checkpoint file": (["segment", "{frame}", "--point", "5,5", "--model", "{missing}/edgetam.pt"], "no such file"),
    "unreadable image": (["segment", "{broken_video}", "--point", "5,5"], "cannot read"),
    "no frames in the folder": (["track", "{missing_parent}", "--point", "5,5"], "no JPEG or PNG frames"),
    "max frames 0": (["track", "{frames}", "--point", "5,5", "--max-frames", "0"], "--max-frames"),
    "grid of 0 points": (["segment-everything", "{frame}", "--points-per-side", "0"], "--points-per-side"),
    "unknown device": (["segment", "{frame}", "--point", "5,5", "--device", "gpu7"], "--device"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_on_stderr_and_a_nonzero_exit(case, model_folder, frame_folder, broken_video, tmp_path, capsys):
    argv, expected = BAD_INPUTS[case]
    names = dict(missing=tmp_path / "missing", missing_parent=tmp_path, broken_video=broken_video,
                 frame=frame_folder / "00000.png", frames=frame_folder)
    argv = [part.format(**names) for part in argv]
    if "--model" not in argv:
        argv += ["--model", str(model_folder)]
    assert run_cli(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and expected in captured.err and "Traceback" not in captured.err


def test_an_mp4_without_pyav_says_how_to_get_it(model_folder, broken_video, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    assert run_cli(["track", broken_video, "--point", "5,5", "--model", model_folder]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and 'pip install "edgetam-hf[video]"' in error


def test_the_hub_default_offline_is_one_line_saying_how_to_point_at_a_file(frame_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(cli_models, "_hub_reachable", lambda: False)
    assert run_cli(["segment", frame_folder / "00000.png", "--point", "5,5"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and cli_models.DEFAULT_MODEL in error and "--model PATH" in error


def test_console_entry_point_exits_nonzero_without_traceback(tmp_path):
    """`python -m edgetam_hf` as a user runs it (the tests' torchvision shim loaded first, as here)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS_DIR)!r})\nimport _torchvision_shim\n_torchvision_shim.install()\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run(
        [sys.executable, "-m", "edgetam_hf", "segment", str(tmp_path / "missing.jpg"), "--point", "1,1"],
        capture_output=True, text=True, env=environment, timeout=300,
    )
    assert completed.returncode == 2 and completed.stdout == ""
    assert completed.stderr.strip().splitlines() == [f"edgetam-hf segment: IMAGE: no such file: {tmp_path / 'missing.jpg'}"]
