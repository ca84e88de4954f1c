"""One video in the studio: a tracking session over the frames (read lazily; see backends.py:
an `EdgeTamVideoProcessor` session or an `OnnxVideoTracker`), prompts on any frame, propagation
in a thread of its own that can be cancelled between frames. The session keeps every result, so
a correction on any frame can be propagated again from there.

Each frame's result is kept as a label map (pixel value = object id, the most confident object
where several claim a pixel, as `edgetam-hf track` writes) in an indexed PNG in the session's
folder, with each object's score: that is what the page draws and the downloads hold."""

import base64
import io
import logging
import queue
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..cli.media import label_map, save_label_png
from ..video.frame_source import FrameReader
from .backends import FrameResult
from .exports import coco_document, overlay_png, write_overlay_video, zip_bytes
from .image_work import check_obj_id
from .models import StudioModels
from .sessions import StudioError
from .uploads import hide_folder

logger = logging.getLogger(__name__)
DIRECTIONS = {"forward": (False,), "backward": (True,), "both": (False, True)}


class PropagationJob:
    """Tracks from `start` in one or both directions in a thread; `events` receives a dict per
    frame and a last {"type": "end"}; `cancel()` stops it after the frame being computed."""

    def __init__(self, work: "VideoWork", start: int | None, directions: tuple[bool, ...]):
        self.work, self.start, self.directions = work, start, directions
        self.events: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        # Set before the last event is sent: a client that has read "end" may prompt at once,
        # while the thread itself may not have exited yet.
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._run, name="studio-propagation", daemon=True)

    def cancel(self) -> None:
        self.cancelled.set()

    @property
    def running(self) -> bool:
        return self.thread.is_alive() and not self.finished.is_set()

    def _run(self) -> None:
        work, started, done, error = self.work, time.perf_counter(), 0, None
        total = sum(work.frames_to_track(self.start, reverse) for reverse in self.directions)
        try:
            for reverse in self.directions:
                for result in work.tracking.propagate(self.start, reverse):
                    done += 1
                    event = work.record(result)
                    self.events.put({"type": "frame", **event, "done": done, "total": total, "fps": done / (time.perf_counter() - started)})
                    if self.cancelled.is_set():
                        break
                if self.cancelled.is_set():
                    break
        except ValueError as error_raised:  # e.g. a frame of the file that cannot be decoded
            error = hide_folder(str(error_raised), work.uploads_dir)
        except Exception as error_raised:  # the page must hear why the run stopped; the server goes on
            logger.exception("studio: a propagation failed")
            error = f"{type(error_raised).__name__}: {error_raised}"
        self.finished.set()
        self.events.put({"type": "end", "cancelled": self.cancelled.is_set(), "error": error, "done": done, "total": total})


class VideoWork:
    kind = "video"

    def __init__(self, models: StudioModels, reader: FrameReader, name: str, folder: Path):
        self.models, self.reader, self.name = models, reader, name
        # The page's frame reads get a decoder of their own, so scrubbing never moves the one the
        # session tracks with (a file's decoder keeps its position).
        self.viewer = reader.opened_again()
        self.viewer_lock = threading.Lock()
        self.masks_dir = folder / "masks"
        self.masks_dir.mkdir(parents=True, exist_ok=True)
        self.exports_dir = folder / "exports"
        self.uploads_dir = folder / "uploads"
        self.scores: dict[int, dict[int, float]] = {}  # frame -> object -> object score logit
        self.job: PropagationJob | None = None
        self.tracking = models.open_video(reader)
        self.width, self.height = reader.size

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def describe(self) -> dict:
        return {
            "kind": self.kind, "name": self.name, "width": self.width, "height": self.height,
            "num_frames": len(self.reader), "fps": self.reader.fps,
        }

    def frame_jpeg(self, frame_idx: int) -> bytes:
        self._check_frame(frame_idx)
        with self.viewer_lock:
            try:
                frame = self.viewer.read(frame_idx)
            except ValueError as error:
                raise StudioError(hide_folder(str(error), self.uploads_dir)) from None
        buffer = io.BytesIO()
        frame.save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    def prompt(self, frame_idx: int, obj_id: int, points: list, box: list | None) -> dict:
        """Replaces the object's prompts on the frame by `points` [[x, y, label], ...] and `box`
        (none of either: clears them) and returns the frame's new result for every object."""
        self._check_idle()
        self._check_frame(frame_idx)
        check_obj_id(obj_id)
        try:
            if not points and box is None:
                if obj_id not in self.tracking.obj_ids:
                    raise StudioError(f"object {obj_id} has no prompts to clear")
                result = self.tracking.clear(frame_idx, obj_id)
            else:
                result = self.tracking.prompt(frame_idx, obj_id, points, box)
        except ValueError as error:
            raise StudioError(hide_folder(str(error), self.uploads_dir)) from None
        return self.record(result)

    def remove_object(self, obj_id: int) -> list[int]:
        """Removes the object everywhere; returns the frames whose results changed."""
        self._check_idle()
        if obj_id not in self.tracking.obj_ids:
            raise StudioError(f"object {obj_id}: no such object")
        results = self.tracking.remove(obj_id)
        changed = set()
        # Frames it was prompted on come back recomputed; elsewhere its pixels become background
        # (an object that lost such a pixel to it gets it back when propagated again).
        for frame_idx, frame_scores in self.scores.items():
            if frame_scores.pop(obj_id, None) is not None:
                labels = self.labels(frame_idx)
                labels[labels == obj_id] = 0
                save_label_png(labels, self._mask_path(frame_idx))
                changed.add(frame_idx)
        for result in results:
            self.record(result)
            changed.add(result.frame_idx)
        return sorted(changed)

    def propagate(self, direction: str, start: int | None) -> PropagationJob:
        self._check_idle()
        if direction not in DIRECTIONS:
            raise StudioError(f"direction: expected one of {', '.join(DIRECTIONS)}, got {direction!r}")
        if not self.tracking.obj_ids:
            raise StudioError("add a click or a box on an object first")
        if start is not None:
            self._check_frame(start)
            if start not in self.scores:  # not run yet: start where the package starts, the first prompted frame
                start = None
        self.job = PropagationJob(self, start, DIRECTIONS[direction])
        self.job.thread.start()
        return self.job

    def frames_to_track(self, start: int | None, reverse: bool) -> int:
        first = start if start is not None else min(self.scores) if self.scores else 0
        return first + 1 if reverse else len(self.reader) - first

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def record(self, result: FrameResult) -> dict:
        """Keeps a frame's label map and scores; returns what the page draws."""
        labels = label_map(result.logits, result.object_ids)
        save_label_png(labels, self._mask_path(result.frame_idx))
        self.scores[result.frame_idx] = result.scores
        return {"frame": result.frame_idx, "scores": result.scores, "overlay": base64.b64encode(overlay_png(labels)).decode()}

    def labels(self, frame_idx: int) -> np.ndarray | None:
        path = self._mask_path(frame_idx)
        if frame_idx not in self.scores or not path.is_file():
            return None
        with Image.open(path) as image:
            return np.asarray(image).copy()

    def overlay(self, frame_idx: int) -> bytes | None:
        self._check_frame(frame_idx)
        labels = self.labels(frame_idx)
        return None if labels is None else overlay_png(labels)

    def davis_zip(self) -> bytes:
        return zip_bytes((f"{self.reader.names[t]}.png", self._mask_path(t).read_bytes()) for t in sorted(self.scores))

    def coco(self) -> str:
        images, masks = [], []
        for frame_idx in sorted(self.scores):
            images.append({"id": frame_idx, "file_name": f"{self.reader.names[frame_idx]}.jpg", "width": self.width, "height": self.height})
            labels = self.labels(frame_idx)
            for obj_id, score in sorted(self.scores[frame_idx].items()):
                masks.append((frame_idx, obj_id, labels == obj_id, {"object_score_logit": score}))
        return coco_document(images, masks)

    def overlay_video(self) -> Path:
        self._check_idle()
        self.exports_dir.mkdir(exist_ok=True)

        def frames():
            for frame_idx in range(len(self.reader)):
                with self.viewer_lock:
                    frame = self.viewer.read(frame_idx)
                yield frame, self.labels(frame_idx)

        try:
            return write_overlay_video(self.exports_dir / "overlay", frames(), self.reader.fps, (self.width, self.height))
        except ValueError as error:
            raise StudioError(hide_folder(str(error), self.uploads_dir)) from None

    def close(self) -> None:
        self.cancel()
        if self.job is not None:
            self.job.thread.join(timeout=30)
        if self.viewer is not self.reader:
            self.viewer.close()
        self.reader.close()

    def _mask_path(self, frame_idx: int) -> Path:
        return self.masks_dir / f"{frame_idx:06d}.png"

    def _check_frame(self, frame_idx: int) -> None:
        if not 0 <= frame_idx < len(self.reader):
            raise StudioError(f"frame {frame_idx}: the video has frames 0 to {len(self.reader) - 1}")

    def _check_idle(self) -> None:
        if self.running:
            raise StudioError("a propagation is running: wait for it or cancel it (Esc) first", status=409)
