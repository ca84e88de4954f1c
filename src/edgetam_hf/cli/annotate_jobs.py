"""What `edgetam-hf annotate` works on: one `VideoJob` per video, from a DAVIS-layout dataset or
a JSON-lines manifest, and each job's prompts.

A job is planned cheaply (names, paths, frame counts, the manifest's structure checked) before any
work; its masks and frames are read when its video is annotated, so a bad file fails that video
alone (it is recorded in the failures file and the others go on).
"""

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..evaluation.davis import list_videos, read_label_png
from .media import FRAME_EXTENSIONS, Video
from .prompts import MAX_OBJECT_ID, NEGATIVE, POSITIVE, ObjectPrompt

MANIFEST_KEYS = {"video", "name", "prompts"}
PROMPT_KEYS = {"object", "frame", "points", "box", "mask"}


@dataclass
class Prompt(ObjectPrompt):
    """One object's prompt on one frame: clicks and / or a box in pixels, or a mask file."""

    mask_file: Path | None = None


@dataclass
class VideoJob:
    """One video to annotate into OUT/<name>/: a folder of frames or a video file, and either
    DAVIS masks (`masks_dir`: each object's first annotated mask is its prompt) or `prompts`."""

    name: str
    source: Path
    num_frames: int  # for balancing the processes' work; 1 when a video file does not say
    masks_dir: Path | None = None
    prompts: list[Prompt] = field(default_factory=list)


# ---------------------------------------------------------------------------- the DAVIS layout


def davis_jobs(frames_root: Path, masks_root: Path, videos: list[str] | None) -> list[VideoJob]:
    """A job per video of MASK_ROOT (or per name of `videos`), whose frames are FRAMES_ROOT/<video>/."""
    for argument, root in (("--frames", frames_root), ("--masks", masks_root)):
        if not root.is_dir():
            raise ValueError(f"{argument}: no such folder: {root}")
    if videos is None:
        videos = list_videos(masks_root)
    jobs = []
    for video in videos:
        frame_dir, mask_dir = frames_root / video, masks_root / video
        if not frame_dir.is_dir():
            raise ValueError(f"--frames: no frame folder {frame_dir} for video {video!r}")
        if not mask_dir.is_dir():
            raise ValueError(f"--masks: no mask folder {mask_dir} for video {video!r}")
        jobs.append(VideoJob(video, frame_dir, max(1, _count_frames(frame_dir)), masks_dir=mask_dir))
    return jobs


def parse_video_names(text: str) -> list[str]:
    """`--videos`: a file with one name per line (as DAVIS's ImageSets/2017/val.txt), or names
    separated by commas."""
    path = Path(text)
    names = path.read_text().split() if path.is_file() else [name.strip() for name in text.split(",")]
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"--videos: no video names in {text!r}")
    _check_unique(names, "--videos")
    return names


def first_mask_prompts(mask_dir: Path, video: Video) -> list[Prompt]:
    """Each object's first annotated mask (in frame order) as its prompt; later masks are not
    read as prompts. Mask files are named as the frames they annotate."""
    frame_of_name = {name: index for index, name in enumerate(video.names)}
    annotated = []
    for file in mask_dir.iterdir():
        if file.suffix.lower() != ".png":
            continue
        if file.stem not in frame_of_name:
            raise ValueError(f"{file}: no frame {file.stem} (.jpg / .png) in the video's frames")
        annotated.append((frame_of_name[file.stem], file))
    prompts, seen_ids = [], set()
    for frame_idx, file in sorted(annotated):
        labels = read_mask_file(file, video.size)
        for obj_id in sorted(set(np.unique(labels).tolist()) - {0} - seen_ids):
            prompts.append(Prompt(obj_id, frame_idx, mask_file=file))
            seen_ids.add(obj_id)
    if not prompts:
        raise ValueError(f"{mask_dir}: no object in any mask (pixel values are object ids, 0 the background)")
    return prompts


def read_mask_file(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(height, width) uint8 ids of an indexed / grey PNG the size (width, height) of the frames."""
    labels = read_label_png(path)
    if labels.shape != (size[1], size[0]):
        raise ValueError(f"{path}: the mask is {labels.shape[1]}x{labels.shape[0]} pixels, the frames {size[0]}x{size[1]}")
    return labels


def prompt_mask(prompt: Prompt, size: tuple[int, int], davis: bool) -> np.ndarray:
    """The (height, width) bool mask of a mask prompt: in a DAVIS annotation the pixels of the
    object's id, in a manifest's mask file every non-zero pixel."""
    labels = read_mask_file(prompt.mask_file, size)
    return labels == prompt.obj_id if davis else labels != 0


# ---------------------------------------------------------------------------- the manifest


def manifest_jobs(manifest: Path) -> list[VideoJob]:
    """One job per line of a JSON-lines manifest; paths relative to the manifest's folder:

        {"video": "clips/dog.mp4", "name": "dog", "prompts": [
            {"object": 1, "frame": 0, "points": [[210, 350], [260, 300, 0]]},
            {"object": 2, "frame": 0, "box": [50, 40, 300, 260]},
            {"object": 3, "frame": 12, "mask": "masks/dog_3.png"}]}
    """
    if not manifest.is_file():
        raise ValueError(f"--manifest: no such file: {manifest}")
    jobs = []
    for line_number, line in enumerate(manifest.read_text().splitlines(), start=1):
        if line.strip():
            jobs.append(_manifest_job(line, f"{manifest}:{line_number}", manifest.parent))
    if not jobs:
        raise ValueError(f"--manifest: {manifest} holds no videos")
    _check_unique([job.name for job in jobs], f"--manifest {manifest}: video names (set \"name\" to tell them apart)")
    return jobs


def _manifest_job(line: str, where: str, base: Path) -> VideoJob:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not JSON ({error})") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("video"), str):
        raise ValueError(f'{where}: expected an object with "video" (a file or folder) and "prompts"')
    _check_keys(entry, MANIFEST_KEYS, where)
    source = base / entry["video"]
    if not source.exists():
        raise ValueError(f"{where}: no such video file or folder: {source}")
    name = entry.get("name", source.stem if source.is_file() else source.name)
    if not isinstance(name, str) or not name or name.startswith(".") or "/" in name or "\\" in name:
        raise ValueError(f'{where}: "name" must be a folder name (no slashes, not starting with a dot), got {name!r}')
    prompts = entry.get("prompts")
    if not isinstance(prompts, list) or not prompts:
        raise ValueError(f'{where}: "prompts" must be a non-empty list')
    parsed = [_manifest_prompt(prompt, f"{where}: prompts[{index}]", base) for index, prompt in enumerate(prompts)]
    num_frames = _count_frames(source) if source.is_dir() else _count_video_frames(source)
    return VideoJob(name, source, max(1, num_frames), prompts=parsed)


def _manifest_prompt(entry, where: str, base: Path) -> Prompt:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object with \"object\" and points, box or mask")
    _check_keys(entry, PROMPT_KEYS, where)
    obj_id, frame_idx = entry.get("object"), entry.get("frame", 0)
    if not isinstance(obj_id, int) or not 1 <= obj_id <= MAX_OBJECT_ID:
        raise ValueError(f'{where}: "object" must be an id from 1 to {MAX_OBJECT_ID}, got {obj_id!r}')
    if not isinstance(frame_idx, int) or frame_idx < 0:
        raise ValueError(f'{where}: "frame" must be a frame number, 0 or more, got {frame_idx!r}')
    prompt = Prompt(obj_id, frame_idx)
    if "mask" in entry:
        if "points" in entry or "box" in entry:
            raise ValueError(f'{where}: a "mask" prompt takes no "points" or "box" (give them as another prompt)')
        prompt.mask_file = base / str(entry["mask"])
        return prompt
    for point in entry.get("points", []):
        if not _numbers(point, (2, 3)) or (len(point) == 3 and point[2] not in (POSITIVE, NEGATIVE)):
            raise ValueError(f'{where}: each of "points" must be [x, y] or [x, y, label] with label 1 or 0, got {point!r}')
        prompt.points.append((float(point[0]), float(point[1])))
        prompt.labels.append(int(point[2]) if len(point) == 3 else POSITIVE)
    if "box" in entry:
        box = entry["box"]
        if not _numbers(box, (4,)) or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f'{where}: "box" must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1, got {box!r}')
        prompt.box = tuple(float(value) for value in box)
    if not prompt.points and prompt.box is None:
        raise ValueError(f'{where}: give "points", a "box" or a "mask"')
    return prompt


def _numbers(value, lengths: tuple[int, ...]) -> bool:
    return isinstance(value, list) and len(value) in lengths and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def _check_keys(entry: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")


def _check_unique(names: list[str], what: str) -> None:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise ValueError(f"{what}: {repeated} given more than once")


def _count_frames(folder: Path) -> int:
    return sum(1 for file in folder.iterdir() if file.suffix.lower() in FRAME_EXTENSIONS)


def _count_video_frames(file: Path) -> int:
    """The frame count a container declares (0 when it does not, or without PyAV)."""
    try:
        import av

        with av.open(str(file)) as container:
            return container.streams.video[0].frames if container.streams.video else 0
    except Exception:  # an unreadable file fails later, when its video is annotated, with its error
        return 0
