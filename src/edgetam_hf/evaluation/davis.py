"""Scoring predicted masks against ground truth in the DAVIS layout, as the DAVIS 2017
semi-supervised benchmark does.

Layout: ROOT/<video>/<frame>.png, indexed (palette) or 8-bit grey PNGs whose pixel value is the
object id (0: background). Conventions, those of vos-benchmark (hkchengrex's scorer, equal to
the official davis2017-evaluation on DAVIS, whose objects are all on the first frame):
- the first and the last frame of every video are not scored (the first is the prompt);
- an object is scored on every scored frame from the first on which it shows in the ground
  truth or the prediction; a frame where it is absent from both scores J = F = 1;
- a video's objects are those its scored ground-truth frames hold;
- J, F of an object are its means over frames; a video's and the overall figures are means over
  objects (not frames), in percent; J&F is the mean of J and F.
"""

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .metrics import boundary_f_measure, region_similarity

LABEL_MODES = ("P", "L")  # indexed or 8-bit grey: the pixel value is the object id


@dataclass(frozen=True)
class ObjectScore:
    """One object's J and F over a video's scored frames, in percent."""

    video: str
    obj_id: int
    j: float
    f: float

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


@dataclass(frozen=True)
class Evaluation:
    """Every object's scores; per-video and overall means over objects."""

    objects: list[ObjectScore]

    @property
    def videos(self) -> list[str]:
        return list(dict.fromkeys(score.video for score in self.objects))

    def mean(self, video: str | None = None) -> tuple[float, float, float]:
        """(J&F, J, F) over the objects of `video`, or of every video when None."""
        scores = [score for score in self.objects if video is None or score.video == video]
        j = float(np.mean([score.j for score in scores]))
        f = float(np.mean([score.f for score in scores]))
        return (j + f) / 2, j, f


def read_label_png(path: Path) -> np.ndarray:
    """(height, width) uint8 object ids of an indexed or grey PNG; a ValueError naming the file
    when it is missing or holds colours instead of ids."""
    try:
        with Image.open(path) as image:
            if image.mode not in LABEL_MODES:
                raise ValueError(
                    f"{path}: expected an indexed (palette) or 8-bit grey PNG of object ids, got mode {image.mode}"
                )
            return np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: cannot read it as a PNG ({error})") from None


def evaluate_folders(
    gt_root: str | os.PathLike, pred_root: str | os.PathLike, videos: list[str] | None = None, workers: int = 1
) -> Evaluation:
    """Scores PRED_ROOT/<video>/<frame>.png against GT_ROOT/<video>/<frame>.png for every video
    of GT_ROOT (or `videos`), `workers` videos at a time in separate processes."""
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    videos = list_videos(gt_root, videos)
    if not pred_root.is_dir():
        raise ValueError(f"{pred_root}: no such folder of predictions")
    for video in videos:
        if not (pred_root / video).is_dir():
            raise ValueError(f"{pred_root / video}: no predictions for video {video!r} of {gt_root}")
    tasks = [(gt_root / video, pred_root / video) for video in videos]
    if workers < 1:
        raise ValueError(f"workers: expected 1 or more, got {workers}")
    if workers == 1 or len(tasks) == 1:
        per_video = [evaluate_video(*task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            per_video = list(pool.map(evaluate_video, *zip(*tasks)))
    objects = [score for scores in per_video for score in scores]
    if not objects:
        raise ValueError(f"{gt_root}: no object to score (a video needs 3 frames or more: the first and last are not scored)")
    return Evaluation(objects)


def list_videos(root: Path, videos: list[str] | None = None) -> list[str]:
    """The video folders of a DAVIS-layout root, sorted; or `videos`, checked to exist there."""
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder")
    if videos is None:
        videos = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
        if not videos:
            raise ValueError(f"{root}: holds no video folders (expected {root}/<video>/<frame>.png)")
        return videos
    for video in videos:
        if not (root / video).is_dir():
            raise ValueError(f"{root / video}: no such video folder")
    return list(videos)


def evaluate_video(gt_dir: Path, pred_dir: Path) -> list[ObjectScore]:
    """Every ground-truth object's J and F on one video (see the module's conventions)."""
    frame_files = sorted(file.name for file in gt_dir.iterdir() if file.suffix.lower() == ".png")
    if not frame_files:
        raise ValueError(f"{gt_dir}: holds no PNG masks")
    truths = {name: read_label_png(gt_dir / name) for name in frame_files}
    known_ids = set().union(*(_object_ids(labels) for labels in truths.values()))
    seen_ids, scored_ids = set(), set()
    j_per_object, f_per_object = {}, {}
    for name in frame_files[1:-1]:
        truth = truths[name]
        prediction = _read_prediction(pred_dir / name, truth.shape, known_ids, gt_dir / name)
        truth_ids = _object_ids(truth)
        scored_ids |= truth_ids
        seen_ids |= truth_ids | _object_ids(prediction)
        for obj_id in seen_ids:
            predicted, true = prediction == obj_id, truth == obj_id
            j_per_object.setdefault(obj_id, []).append(region_similarity(predicted, true))
            f_per_object.setdefault(obj_id, []).append(boundary_f_measure(predicted, true))
    return [
        ObjectScore(gt_dir.name, obj_id, 100 * float(np.mean(j_per_object[obj_id])), 100 * float(np.mean(f_per_object[obj_id])))
        for obj_id in sorted(scored_ids)
    ]


def _read_prediction(path: Path, shape: tuple[int, int], known_ids: set[int], gt_path: Path) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"{path}: missing prediction for the ground truth {gt_path}")
    prediction = read_label_png(path)
    if prediction.shape != shape:
        raise ValueError(
            f"{path}: the prediction is {prediction.shape[1]}x{prediction.shape[0]} pixels, "
            f"the ground truth {gt_path} {shape[1]}x{shape[0]}"
        )
    unknown = _object_ids(prediction) - known_ids
    if unknown:
        raise ValueError(
            f"{path}: object ids {sorted(unknown)} are in no ground-truth mask of {gt_path.parent} "
            f"(its objects: {sorted(known_ids) or 'none'})"
        )
    return prediction


def _object_ids(labels: np.ndarray) -> set[int]:
    return {int(value) for value in np.unique(labels) if value != 0}
