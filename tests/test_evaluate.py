"""`edgetam_hf.evaluation` and `edgetam-hf evaluate`: J, F and J&F against vos-benchmark (the
DAVIS-equivalent scorer) on the same folders, the NumPy dilation against its definition, and
errors that name the file."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetam_hf.cli import main
from edgetam_hf.cli.media import save_label_png
from edgetam_hf.evaluation import evaluate_folders, read_label_png, region_similarity, render_sample_set
from edgetam_hf.evaluation.metrics import boundary_f_measure, dilate_with_disk

# Frames of 320x180: the boundary tolerance is ceil(0.008 * 367) = 3 pixels.
SAMPLE_SIZE = (320, 180)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("davis")
    render_sample_set(root, frame_counts=(6, 5, 5), size=SAMPLE_SIZE)
    return root


@pytest.fixture(scope="module")
def predictions(dataset, tmp_path_factory) -> Path:
    """The ground truth, disturbed as trackers err: shifted masks, an object lost on a frame, the
    late object predicted before it appears, an object predicted empty at the end."""
    root = tmp_path_factory.mktemp("pred")
    for video_dir in sorted((dataset / "Annotations").iterdir()):
        out_dir = root / video_dir.name
        out_dir.mkdir()
        index = int(video_dir.name.split("-")[1])
        for t, file in enumerate(sorted(video_dir.iterdir())):
            labels = np.roll(read_label_png(file), shift=(index + t, 2 * t - 3), axis=(0, 1))
            if t == 2:
                labels[labels == 2] = 0
            if t == 1 and index == 1:
                labels[10:40, 20:60] = 3  # before object 3 shows in the ground truth (frame 2)
            if t == 3 and index == 2:
                labels[labels == 1] = 0
            save_label_png(labels, out_dir / file.name)
    return root


def test_scores_equal_vos_benchmarks(dataset, predictions, tmp_path):
    benchmark = pytest.importorskip("vos_benchmark.benchmark")
    ours = evaluate_folders(dataset / "Annotations", predictions)
    scored = tmp_path / "pred"  # vos-benchmark writes its results.csv into the prediction folder
    shutil.copytree(predictions, scored)
    global_jf, global_j, global_f, per_object = benchmark.benchmark(
        [str(dataset / "Annotations")], [str(scored)], num_processes=1, verbose=False
    )
    jf, j, f = ours.mean()
    assert jf == pytest.approx(global_jf[0], abs=1e-6)
    assert j == pytest.approx(global_j[0], abs=1e-6)
    assert f == pytest.approx(global_f[0], abs=1e-6)
    theirs = {(video, int(obj)): (iou[obj], boundary[obj]) for video, (iou, boundary) in per_object[0].items() for obj in iou}
    assert {(score.video, score.obj_id) for score in ours.objects} == set(theirs)
    for score in ours.objects:
        assert (score.j, score.f) == pytest.approx(theirs[score.video, score.obj_id], abs=1e-6)
    # The disturbances must show: a perfect score would not test F's and J's arithmetic.
    assert 20 < j < 95 and 20 < f < 95


def test_perfect_prediction_scores_100_and_workers_agree(dataset, predictions):
    perfect = evaluate_folders(dataset / "Annotations", dataset / "Annotations")
    assert perfect.mean() == (100.0, 100.0, 100.0)
    assert [score.obj_id for score in perfect.objects if score.video == "shapes-1"] == [1, 2, 3]
    one, two = (evaluate_folders(dataset / "Annotations", predictions, workers=workers) for workers in (1, 2))
    assert one.objects == two.objects


def test_disk_dilation_is_the_dilation_by_a_disk():
    rng = np.random.default_rng(0)
    mask = rng.random((23, 31)) < 0.03
    mask[0, 5] = mask[22, 30] = True  # boundary pixels: nothing dilates in from outside
    for radius in (0, 1, 3, 6):
        expected = np.zeros_like(mask)
        for y, x in zip(*np.nonzero(mask), strict=True):
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    if dy * dy + dx * dx <= radius * radius and 0 <= y + dy < 23 and 0 <= x + dx < 31:
                        expected[y + dy, x + dx] = True
        np.testing.assert_array_equal(dilate_with_disk(mask, radius), expected)


def test_empty_masks_conventions():
    empty, square = np.zeros((40, 40), bool), np.zeros((40, 40), bool)
    square[10:20, 10:20] = True
    assert region_similarity(empty, empty) == 1.0 and boundary_f_measure(empty, empty) == 1.0
    assert region_similarity(empty, square) == 0.0 and boundary_f_measure(square, empty) == 0.0
    half = np.zeros_like(square)
    half[10:20, 15:25] = True
    assert region_similarity(half, square) == pytest.approx(50 / 150)


def _copy_pred(predictions: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "pred"
    shutil.copytree(predictions, copy)
    return copy


def test_missing_prediction_is_named(dataset, predictions, tmp_path):
    pred = _copy_pred(predictions, tmp_path)
    (pred / "shapes-1" / "00002.png").unlink()
    with pytest.raises(ValueError, match=r"shapes-1/00002\.png: missing prediction"):
        evaluate_folders(dataset / "Annotations", pred)
    shutil.rmtree(pred / "shapes-2")
    with pytest.raises(ValueError, match=r"shapes-2: no predictions"):
        evaluate_folders(dataset / "Annotations", pred)


def test_wrong_size_unknown_ids_and_colours_are_named(dataset, predictions, tmp_path):
    pred = _copy_pred(predictions, tmp_path)
    target = pred / "shapes-0" / "00003.png"
    save_label_png(np.zeros((90, 160), np.uint8), target)
    with pytest.raises(ValueError, match=r"shapes-0/00003\.png: the prediction is 160x90 pixels, the ground truth .* 320x180"):
        evaluate_folders(dataset / "Annotations", pred)
    labels = np.zeros((180, 320), np.uint8)
    labels[5:9, 5:9] = 7
    save_label_png(labels, target)
    with pytest.raises(ValueError, match=r"shapes-0/00003\.png: object ids \[7\] are in no ground-truth mask"):
        evaluate_folders(dataset / "Annotations", pred)
    Image.new("RGB", (320, 180)).save(target)
    with pytest.raises(ValueError, match=r"shapes-0/00003\.png: expected an indexed \(palette\) or 8-bit grey PNG"):
        evaluate_folders(dataset / "Annotations", pred)


def test_evaluate_command_prints_and_writes_csv(dataset, predictions, tmp_path, capsys):
    csv_path = tmp_path / "scores.csv"
    assert main(["evaluate", "--gt", str(dataset / "Annotations"), "--pred", str(predictions), "--csv", str(csv_path), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    expected = evaluate_folders(dataset / "Annotations", predictions)
    jf, j, f = expected.mean()
    assert f"J&F {jf:.1f}  J {j:.1f}  F {f:.1f} over 7 object(s) of 3 video(s)" in printed
    rows = [line.split(",") for line in csv_path.read_text().splitlines()]
    assert rows[0] == ["level", "video", "object", "J&F", "J", "F"]
    assert rows[1][0] == "overall" and float(rows[1][3]) == pytest.approx(jf, abs=1e-9)
    object_rows = [row for row in rows if row[0] == "object"]
    assert [(row[1], int(row[2])) for row in object_rows] == [(score.video, score.obj_id) for score in expected.objects]
    assert main(["evaluate", "--gt", str(dataset / "Annotations"), "--pred", str(tmp_path / "nothing")]) == 2
    assert "nothing: no such folder of predictions" in capsys.readouterr().err
