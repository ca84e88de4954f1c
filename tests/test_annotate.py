"""`edgetam-hf annotate` on the tiny model and a tiny rendered DAVIS-layout set: the masks the
public video API computes, resuming after a crash, failures kept to their video, the manifest,
and the same masks from two processes under `accelerate launch`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _video_tiny import model_folder, single_thread  # noqa: F401  (fixtures; single_thread is autouse)
from edgetam_hf.cli import annotate as annotate_module
from edgetam_hf.cli import main
from edgetam_hf.cli.annotate_driver import split_by_frames
from edgetam_hf.cli.media import davis_palette, save_label_png
from edgetam_hf.evaluation import read_label_png, region_similarity, render_sample_set

TESTS_DIR = Path(__file__).parent
FRAME_COUNTS = (5, 3, 4)  # shapes-1 has object 3 from frame 2 on
MAX_DIFFERING_PIXELS = 1e-4  # of all pixels, between runs that differ only in float noise


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("davis")
    render_sample_set(root, frame_counts=FRAME_COUNTS)
    return root


def annotate_args(dataset: Path, out: Path, model_folder: Path, *extra) -> list[str]:
    return ["annotate", "--frames", str(dataset / "JPEGImages"), "--masks", str(dataset / "Annotations"),
            # float32: compared with the API (the default, auto, is bfloat16 where the CPU has it)
            "--out", str(out), "--model", str(model_folder), "--dtype", "float32", "--device", "cpu", *map(str, extra)]


@pytest.fixture(scope="module")
def baseline(dataset, model_folder, tmp_path_factory) -> Path:
    """One uninterrupted single-process run."""
    out = tmp_path_factory.mktemp("baseline")
    torch.set_num_threads(1)
    assert main(annotate_args(dataset, out, model_folder)) == 0
    return out


def masks_of(root: Path) -> dict[str, np.ndarray]:
    return {f"{file.parent.name}/{file.name}": read_label_png(file) for file in sorted(root.glob("*/*.png"))}


def assert_same_masks(actual_root: Path, expected_root: Path) -> None:
    actual, expected = masks_of(actual_root), masks_of(expected_root)
    assert actual.keys() == expected.keys()
    differing = sum(int(np.count_nonzero(actual[name] != expected[name])) for name in expected)
    total = sum(labels.size for labels in expected.values())
    assert differing <= MAX_DIFFERING_PIXELS * total, f"{differing} of {total} pixels differ"


def test_split_by_frames_balances_and_assigns_each_video_once():
    counts = [80, 10, 45, 45, 30, 5, 70, 20]
    for num_processes in (1, 2, 3, 8, 10):
        shares = split_by_frames(counts, num_processes)
        assert sorted(index for share in shares for index in share) == list(range(len(counts)))
        loads = [sum(counts[index] for index in share) for share in shares]
        # Greedy longest-first is within the longest video of the best split.
        assert max(loads) <= max(sum(counts) / num_processes, max(counts)) + max(counts)
    assert sorted(sum(counts[i] for i in share) for share in split_by_frames(counts, 2)) == [150, 155]


def test_writes_the_masks_of_the_video_api(baseline, dataset, model_folder):
    assert sorted(path.name for path in baseline.iterdir()) == ["shapes-0", "shapes-1", "shapes-2"]
    for name, num_frames in zip(["shapes-0", "shapes-1", "shapes-2"], FRAME_COUNTS, strict=True):
        assert len(list((baseline / name).glob("*.png"))) == num_frames
        marker = json.loads((baseline / name / ".done").read_text())
        assert marker["frames"] == num_frames and marker["process"] == 0
    assert json.loads((baseline / "shapes-1" / ".done").read_text())["objects"] == [1, 2, 3]
    image = Image.open(baseline / "shapes-0" / "00000.png")
    assert image.mode == "P" and image.getpalette()[: 3 * 256] == davis_palette()

    # shapes-1 by hand through the public API: objects 1, 2 prompted on frame 0, object 3 on frame 2.
    from edgetam_hf import EdgeTamVideoModel, EdgeTamVideoProcessor

    model = EdgeTamVideoModel.from_pretrained(model_folder).eval()
    processor = EdgeTamVideoProcessor(target_size=128)
    frames = [Image.open(path).convert("RGB") for path in sorted((dataset / "JPEGImages" / "shapes-1").glob("*.jpg"))]
    truth = [read_label_png(path) for path in sorted((dataset / "Annotations" / "shapes-1").glob("*.png"))]
    session = processor.init_video_session(video=frames)
    with torch.no_grad():
        for frame_idx, obj_ids in ((0, [1, 2]), (2, [3])):
            processor.add_inputs_to_inference_session(
                session, frame_idx=frame_idx, obj_ids=obj_ids, input_masks=[truth[frame_idx] == obj_id for obj_id in obj_ids]
            )
            model(session, frame_idx=frame_idx)
        for output in model.propagate_in_video_iterator(session):
            masks = processor.post_process_masks([output.pred_masks], [[96, 128]])[0][:, 0]
            expected = np.zeros((96, 128), np.uint8)
            for obj_id, mask in sorted(zip(output.object_ids, masks, strict=True), reverse=True):  # the lowest id on top
                expected[mask.numpy()] = obj_id
            written = read_label_png(baseline / "shapes-1" / f"{output.frame_idx:05d}.png")
            assert np.count_nonzero(written != expected) <= MAX_DIFFERING_PIXELS * expected.size
    # The prompt frame shows the prompted masks (through the mask decoder's resolution).
    first = read_label_png(baseline / "shapes-0" / "00000.png")
    first_truth = read_label_png(dataset / "Annotations" / "shapes-0" / "00000.png")
    assert all(region_similarity(first == obj_id, first_truth == obj_id) > 0.8 for obj_id in (1, 2))


class _Killed(BaseException):
    """Not an Exception: like a SIGKILL, no per-video handler may catch it."""


def test_a_killed_run_restarted_ends_with_the_same_masks(baseline, dataset, model_folder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    writes = []
    real_save = annotate_module.save_label_png

    def crash_in_the_second_video(labels, path):
        writes.append(path)
        if len(writes) == FRAME_COUNTS[0] + 2:  # shapes-0 (the longest, first) done, then two frames of the next
            raise _Killed
        real_save(labels, path)

    monkeypatch.setattr(annotate_module, "save_label_png", crash_in_the_second_video)
    with pytest.raises(_Killed):
        main(annotate_args(dataset, out, model_folder))
    assert (out / "shapes-0" / ".done").is_file() and not (out / "shapes-2").exists()
    assert len(list((out / ".partial" / "shapes-2").glob("*.png"))) == 1
    first_marker = (out / "shapes-0" / ".done").read_text()

    monkeypatch.setattr(annotate_module, "save_label_png", real_save)
    capsys.readouterr()
    assert main(annotate_args(dataset, out, model_folder)) == 0
    summary = capsys.readouterr().out
    assert "annotated 2 video(s), 7 frame(s)" in summary and "1 already done" in summary
    assert (out / "shapes-0" / ".done").read_text() == first_marker  # not redone
    assert not (out / ".partial").exists()
    assert_same_masks(out, baseline)


def test_a_failing_video_is_recorded_and_the_others_go_on(baseline, dataset, model_folder, tmp_path, capsys):
    broken = tmp_path / "davis"
    shutil.copytree(dataset, broken)
    bad_mask = broken / "Annotations" / "shapes-2" / "00000.png"
    save_label_png(np.ones((50, 60), np.uint8), bad_mask)
    out = tmp_path / "out"
    assert main(annotate_args(broken, out, model_folder)) == 1
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [failure["video"] for failure in failures] == ["shapes-2"]
    assert f"{bad_mask}: the mask is 60x50 pixels, the frames 128x96" in failures[0]["error"]
    assert "1 failed" in capsys.readouterr().out
    assert (out / "shapes-0" / ".done").is_file() and (out / "shapes-1" / ".done").is_file()
    assert not (out / "shapes-2").exists() and not (out / ".partial").exists()

    shutil.copy(dataset / "Annotations" / "shapes-2" / "00000.png", bad_mask)
    assert main(annotate_args(broken, out, model_folder)) == 0
    assert not (out / "failures.jsonl").exists()
    assert_same_masks(out, baseline)


def test_bad_input_is_named(dataset, model_folder, tmp_path, capsys):
    assert main(annotate_args(dataset, tmp_path / "out", model_folder, "--videos", "shapes-0,nope")) == 2
    assert f"--frames: no frame folder {dataset / 'JPEGImages' / 'nope'}" in capsys.readouterr().err

    broken = tmp_path / "davis"
    shutil.copytree(dataset, broken)
    (broken / "JPEGImages" / "shapes-1" / "00002.jpg").unlink()  # a missing frame that has a mask
    assert main(annotate_args(broken, tmp_path / "out", model_folder, "--videos", "shapes-1")) == 1
    error = json.loads((tmp_path / "out" / "failures.jsonl").read_text())["error"]
    assert f"{broken / 'Annotations' / 'shapes-1' / '00002.png'}: no frame 00002" in error

    assert main(["annotate", "--manifest", str(tmp_path / "m.jsonl"), "--frames", str(dataset), "--out", str(tmp_path)]) == 2
    assert "give either --manifest, or --frames with --masks" in capsys.readouterr().err
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"video": str(dataset / "JPEGImages" / "shapes-0"), "prompts": [{"object": 0, "box": [1, 2, 3, 4]}]}) + "\n")
    assert main(["annotate", "--manifest", str(manifest), "--out", str(tmp_path / "o"), "--model", str(model_folder)]) == 2
    assert f'{manifest}:1: prompts[0]: "object" must be an id from 1 to 255, got 0' in capsys.readouterr().err


def test_manifest_of_clicks_boxes_and_mask_files(dataset, model_folder, tmp_path):
    truth = read_label_png(dataset / "Annotations" / "shapes-1" / "00002.png")
    save_label_png((truth == 3).astype(np.uint8) * 255, tmp_path / "triangle.png")
    ys, xs = np.nonzero(read_label_png(dataset / "Annotations" / "shapes-0" / "00000.png") == 2)
    manifest = tmp_path / "videos.jsonl"
    lines = [
        {"video": str(dataset / "JPEGImages" / "shapes-0"), "name": "clicks",
         "prompts": [{"object": 2, "points": [[float(xs.mean()), float(ys.mean())], [2, 2, 0]]}]},
        {"video": str(dataset / "JPEGImages" / "shapes-1"),
         "prompts": [{"object": 5, "frame": 1, "box": [10, 10, 60, 50]}, {"object": 3, "frame": 2, "mask": "triangle.png"}]},
    ]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    assert main(["annotate", "--manifest", str(manifest), "--out", str(out), "--model", str(model_folder), "--device", "cpu"]) == 0
    assert len(list((out / "clicks").glob("*.png"))) == 5 and len(list((out / "shapes-1").glob("*.png"))) == 3
    assert not read_label_png(out / "shapes-1" / "00000.png").any()  # before the first prompt
    assert json.loads((out / "shapes-1" / ".done").read_text())["objects"] == [3, 5]
    third = read_label_png(out / "shapes-1" / "00002.png")
    assert region_similarity(third == 3, truth == 3) > 0.5


@pytest.mark.slow
def test_two_accelerate_processes_write_the_single_process_masks(baseline, dataset, model_folder, tmp_path):
    """`accelerate launch` with two CPU processes (torchrun underneath; accelerate's own `--cpu`
    launcher starts one process only, see docs/annotate.md)."""
    pytest.importorskip("accelerate")
    site = tmp_path / "site"  # the tests' torchvision shim, loaded first in every process
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS_DIR)!r})\nimport _torchvision_shim\n_torchvision_shim.install()\n"
    )
    source = Path(annotate_module.__file__).parents[2]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(source), os.environ.get("PYTHONPATH", "")]),
                   "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    out = tmp_path / "out"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
               "-m", "edgetam_hf", *annotate_args(dataset, out, model_folder)[:-2]]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "annotated 3 video(s), 12 frame(s)" in completed.stdout and "on 2 process(es)" in completed.stdout
    processes = {name: json.loads((out / name / ".done").read_text())["process"] for name in ("shapes-0", "shapes-1", "shapes-2")}
    assert processes == {"shapes-0": 0, "shapes-1": 1, "shapes-2": 1}  # 5 frames | 4 + 3 frames
    assert_same_masks(out, baseline)
