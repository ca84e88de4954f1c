"""`OnnxVideoTracker`: objects tracked through a video by the exported graphs, with NumPy and
onnxruntime alone (no torch).

The session semantics are those of `EdgeTamVideoModel` driven by `EdgeTamVideoProcessor` (see
`edgetam_hf.video.propagation`): a prompt on a frame an object has not been run on is an initial
conditioning frame, segmented without memory; on a frame already tracked it is a correction,
segmented with the memory and the previous logits. Before tracking, prompt results are
consolidated: every object gets a result on every prompted frame (a placeholder without one) and
a memory encoded from its binarised mask. Tracking reuses those and runs every other frame from
the memory bank, objects that read the same memories in one batch.

Frames come as a sequence (read when needed) or one at a time with `add_frame` (streaming). Only
the features of the most recently used frames are kept, and with `max_stored_frames` only that
many tracked frames' results are kept behind the newest one, so a stream of any length runs in
bounded memory.
"""

from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..tracking_order import frames_to_track
from .hole_filling import fill_holes
from .image_ops import upsample_logits, video_pixel_values
from .manifest import IMAGE_ENCODER, MEMORY_ENCODER, TRACKING_STEP, read_manifest
from .memory_plan import FramePlan, PlannedMemory, fill_slots, plan_frame
from .prompts import prompt_tokens
from .video_state import OnnxVideoFrame, StoredResult, TrackedObject, round_to_bfloat16

# The original's `NO_OBJ_SCORE` (mask logits of placeholders) and a placeholder's object score.
NO_OBJECT_SCORE = np.float32(-1024.0)
PLACEHOLDER_OBJECT_SCORE = np.float32(10.0)
# Previous logits fed back with a correction are clamped to this range, as the original does.
PREVIOUS_LOGITS_CLAMP = np.float32(32.0)
MEMORY_DTYPES = ("bfloat16", "float32")


class OnnxVideoTracker:
    """Tracks objects through one video with an export folder of a video model.

    >>> tracker = OnnxVideoTracker("edgetam-onnx", frames)                  # doctest: +SKIP
    >>> tracker.add_prompt(0, obj_id=1, points=[[210, 350]])               # doctest: +SKIP
    >>> for frame in tracker.propagate():                                  # doctest: +SKIP
    ...     masks = tracker.masks(frame)                                   # (num_objects, H, W) bool
    """

    def __init__(
        self,
        folder,
        frames=None,
        video_size: tuple[int, int] | None = None,
        memory_dtype: str = "bfloat16",
        max_cached_features: int = 1,
        max_stored_frames: int | None = None,
        fill_hole_area: int | None = None,
        providers: list[str] | None = None,
        session_options=None,
    ):
        """
        Args:
            folder: what `edgetam-hf export` wrote for a video model.
            frames: a sequence of frames (PIL images or (H, W, 3) uint8 arrays), read when needed;
                None to stream them in with `add_frame`.
            video_size: (height, width) of the frames; default: that of the first frame.
            memory_dtype: "bfloat16" rounds stored memories as the PyTorch session does by
                default (and the original); "float32" keeps them unrounded.
            max_cached_features: how many frames' image features are kept (most recently used).
            max_stored_frames: keep the tracked results of at most this many frames behind the
                newest tracked one (at least the memory window); None keeps every result.
            fill_hole_area: fill background regions of up to this many low-resolution pixels
                (default: the exported model's `fill_hole_area`; 0 turns it off).
            providers, session_options: as onnxruntime's `InferenceSession` takes them.
        """
        import onnxruntime

        if memory_dtype not in MEMORY_DTYPES:
            raise ValueError(f"memory_dtype must be one of {MEMORY_DTYPES}, got {memory_dtype!r}")
        if not isinstance(max_cached_features, int) or max_cached_features < 1:
            raise ValueError(f"max_cached_features must be a positive int, got {max_cached_features!r}")
        self.folder = Path(folder).expanduser()
        self.manifest = read_manifest(self.folder, video=True)
        self.settings = self.manifest["video"]
        if max_stored_frames is not None and max_stored_frames < self._memory_window():
            raise ValueError(
                f"max_stored_frames must be at least {self._memory_window()} (the frames a tracked frame reads); "
                f"got {max_stored_frames}"
            )
        preprocessing = self.manifest["preprocessing"]
        self.image_size = int(preprocessing["image_size"])
        self.mask_size = int(preprocessing["mask_size"])
        self.dtype = np.dtype(self.manifest["dtype"])
        self.memory_dtype = memory_dtype
        self.max_cached_features = max_cached_features
        self.max_stored_frames = max_stored_frames
        self._sessions = {
            name: onnxruntime.InferenceSession(
                str(self.folder / self.manifest["graphs"][name]["file"]),
                sess_options=session_options,
                providers=providers or ["CPUExecutionProvider"],
            )
            for name in (IMAGE_ENCODER, MEMORY_ENCODER, TRACKING_STEP)
        }
        step_inputs = {value["name"]: value["shape"] for value in self.manifest["graphs"][TRACKING_STEP]["inputs"]}
        # Per object: (S, T, mem_dim) memory slots and (P, hidden) pointer slots.
        self._slot_shapes = tuple(step_inputs["memory_tokens"][1:]), tuple(step_inputs["object_pointers"][1:])
        self.num_memory_slots, self.num_pointer_slots = self._slot_shapes[0][0], self._slot_shapes[1][0]
        self.no_object_pointer = np.asarray(self.settings["no_object_pointer"], dtype=np.float32)
        if fill_hole_area is not None and (isinstance(fill_hole_area, bool) or not isinstance(fill_hole_area, int) or fill_hole_area < 0):
            raise ValueError(f"fill_hole_area must be an int >= 0 or None, got {fill_hole_area!r}")
        self.fill_hole_area = self.settings["fill_hole_area"] if fill_hole_area is None else fill_hole_area

        self.is_streaming = frames is None
        # Indexed when needed, never copied: a lazy reader (one frame at a time) stays lazy.
        self._frames = frames if frames is None or hasattr(frames, "__getitem__") else list(frames)
        self._num_frames = len(self._frames) if frames is not None else 0
        self.video_size = tuple(video_size) if video_size is not None else None
        if self.video_size is None and self._num_frames:
            self.video_size = _frame_size(self._frames[0])
        self._features: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self.reset()

    # ------------------------------------------------------------------ frames

    @property
    def num_frames(self) -> int:
        return self._num_frames

    def add_frame(self, frame) -> int:
        """Streams in the next frame (its features are computed now); returns its index."""
        if not self.is_streaming:
            raise ValueError("add_frame is for a tracker made without frames (streaming); this one was given its frames")
        if self.video_size is None:
            self.video_size = _frame_size(frame)
        elif _frame_size(frame) != self.video_size:
            raise ValueError(f"frame has size {_frame_size(frame)} (height, width); the video's frames are {self.video_size}")
        frame_idx = self._num_frames
        self._num_frames += 1
        self._cache_features(frame_idx, self._encode(frame))
        return frame_idx

    def _frame_features(self, frame_idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(high_res_feat_s0, high_res_feat_s1, vision_features) of a frame, batch 1."""
        features = self._features.get(frame_idx)
        if features is not None:
            self._features.move_to_end(frame_idx)
            return features
        if self.is_streaming:
            raise ValueError(
                f"frame {frame_idx}'s features are no longer kept (max_cached_features={self.max_cached_features}); "
                "a streamed frame can be revisited only while it is among the most recent ones"
            )
        features = self._encode(self._frames[frame_idx])
        self._cache_features(frame_idx, features)
        return features

    def _encode(self, frame):
        pixel_values = video_pixel_values(
            frame, self.image_size, self.manifest["preprocessing"]["image_mean"], self.manifest["preprocessing"]["image_std"]
        )
        return tuple(self._sessions[IMAGE_ENCODER].run(None, {"pixel_values": pixel_values.astype(self.dtype)}))

    def _cache_features(self, frame_idx: int, features) -> None:
        self._features[frame_idx] = features
        while len(self._features) > self.max_cached_features:
            self._features.popitem(last=False)

    def _check_frame(self, frame_idx, name: str = "frame_idx") -> None:
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, int) or not 0 <= frame_idx < self._num_frames:
            raise ValueError(f"{name} must be the index of a frame of the video (0 to {self._num_frames - 1}); got {frame_idx!r}")

    # ------------------------------------------------------------------ prompts

    def reset(self) -> None:
        """Forgets every object, prompt and result (the frames stay)."""
        self._objects: dict[int, TrackedObject] = {}
        self._consolidated = {True: set(), False: set()}  # prompted frames whose results tracking reuses

    @property
    def object_ids(self) -> list[int]:
        return list(self._objects)

    def add_prompt(self, frame_idx: int, obj_id: int, points=None, labels=None, box=None) -> OnnxVideoFrame:
        """Segments one object on one frame from clicks and / or a box (replacing its earlier
        prompt there) and returns every object's result on that frame.

        Args:
            frame_idx: the frame; when streaming, one that has arrived.
            obj_id: the object (an int); a new id adds an object.
            points: [[x, y], ...] in video pixels; labels: 1 positive, 0 negative (default all 1).
            box: [x0, y0, x1, y1] in video pixels.
        """
        self._check_frame(frame_idx)
        if isinstance(obj_id, bool) or not isinstance(obj_id, int):
            raise ValueError(f"obj_id must be an int, got {obj_id!r}")
        if points is None and box is None:
            raise ValueError("give points and / or a box")
        coordinates, token_labels = prompt_tokens(
            [points] if points is not None else None,
            [labels] if labels is not None else None,
            [box] if box is not None else None,
            self.video_size,
            self.image_size,
        )
        tracked = self._objects.setdefault(obj_id, TrackedObject(obj_id))
        is_conditioning = frame_idx not in tracked.tracked_frames
        previous = tracked.latest(frame_idx, is_conditioning)
        mask_input = np.zeros((1, 1, self.mask_size, self.mask_size), dtype=np.float32)
        if previous is not None:
            mask_input = np.clip(previous.mask_logits, -PREVIOUS_LOGITS_CLAMP, PREVIOUS_LOGITS_CLAMP)[None]
        plan = FramePlan((), ())
        if not is_conditioning:
            reverse = tracked.tracked_frames[frame_idx]
            plan = self._plan(tracked, frame_idx, reverse)
        num_points = coordinates.shape[1] - 1  # the padding point is not counted
        outputs = self._run_step(
            frame_idx,
            plan,
            [tracked],
            coordinates,
            token_labels,
            mask_input,
            has_mask=previous is not None,
            multimask=self._use_multimask(is_conditioning, num_points),
        )
        mask_logits, object_pointer, object_score_logits, _ = outputs
        tracked.prompt_results[is_conditioning][frame_idx] = StoredResult(
            fill_holes(mask_logits[0], self.fill_hole_area), object_pointer[0], object_score_logits[0, 0]
        )
        results = [other.latest(frame_idx, is_conditioning) for other in self._objects.values()]
        return self._frame_output(frame_idx, [r if r is not None else self._placeholder() for r in results])

    def _use_multimask(self, is_initial_conditioning: bool, num_points: int) -> bool:
        settings = self.settings
        return (
            settings["multimask_output_in_sam"]
            and (is_initial_conditioning or settings["multimask_output_for_tracking"])
            and settings["multimask_min_pt_num"] <= num_points <= settings["multimask_max_pt_num"]
        )

    # ------------------------------------------------------------------ consolidation

    def _prepare_tracking(self) -> None:
        """Merges prompt results into the memory bank (original: `propagate_in_video_preflight`)."""
        objects = list(self._objects.values())
        for is_conditioning in (False, True):
            # A set walked as the PyTorch session walks it: the order of conditioning memories.
            frames = set()
            for tracked in objects:
                frames.update(tracked.prompt_results[is_conditioning].keys())
            self._consolidated[is_conditioning].update(frames)
            for frame_idx in frames:
                self._consolidate(frame_idx, is_conditioning, objects)
            for tracked in objects:
                tracked.prompt_results[is_conditioning].clear()
        for frame_idx in sorted(self._consolidated[True]):  # objects that joined after a prompted frame
            missing = [tracked for tracked in objects if tracked.find(frame_idx) is None]
            if missing:
                self._consolidate(frame_idx, True, missing)
        for tracked in objects:
            for frame_idx in tracked.results[True]:
                tracked.results[False].pop(frame_idx, None)
        self._consolidated[False] -= self._consolidated[True]

    def _consolidate(self, frame_idx: int, is_conditioning: bool, objects: list[TrackedObject]) -> None:
        """Every object's latest result on a prompted frame (a placeholder without one), with a
        memory encoded from the binarised masks, in one batch."""
        results = [tracked.latest(frame_idx, is_conditioning) for tracked in objects]
        results = [result if result is not None else self._placeholder() for result in results]
        vision_features = self._frame_features(frame_idx)[2]
        (memory_tokens,) = self._sessions[MEMORY_ENCODER].run(
            None,
            {
                "vision_features": vision_features,
                "mask_logits": np.stack([result.mask_logits for result in results]).astype(self.dtype),
                "object_score_logits": np.array([[result.object_score] for result in results], dtype=self.dtype),
            },
        )
        for row, (tracked, result) in enumerate(zip(objects, results)):
            tracked.results[is_conditioning][frame_idx] = StoredResult(
                result.mask_logits, result.object_pointer, result.object_score, self._stored_memory(memory_tokens[row])
            )

    def _placeholder(self) -> StoredResult:
        return StoredResult(
            np.full((1, self.mask_size, self.mask_size), NO_OBJECT_SCORE, dtype=np.float32),
            self.no_object_pointer,
            PLACEHOLDER_OBJECT_SCORE,
        )

    def _stored_memory(self, memory_tokens: np.ndarray) -> np.ndarray:
        memory_tokens = memory_tokens.astype(np.float32)
        return round_to_bfloat16(memory_tokens) if self.memory_dtype == "bfloat16" else memory_tokens

    # ------------------------------------------------------------------ tracking

    def propagate(self, start_frame_idx: int | None = None, max_frame_num_to_track: int | None = None, reverse: bool = False):
        """Tracks every object frame by frame, yielding `OnnxVideoFrame`s (the model's
        `propagate_in_video_iterator`): from the first prompted frame by default, over
        `max_frame_num_to_track` more frames (default: to the end, or to frame 0 when `reverse`)."""
        self._prepare_tracking()
        self._require_prompts()
        if start_frame_idx is None:
            start_frame_idx = min(t for tracked in self._objects.values() for t in tracked.results[True])
        self._check_frame(start_frame_idx, "start_frame_idx")
        order = frames_to_track(start_frame_idx, max_frame_num_to_track, reverse, self._num_frames)
        for frame_idx in order:
            yield self._track_frame(frame_idx, reverse)

    def track(self, frame_idx: int, reverse: bool = False) -> OnnxVideoFrame:
        """One frame of tracking (when streaming: the frame just added), as `model(session, frame_idx=...)`."""
        self._check_frame(frame_idx)
        self._prepare_tracking()
        return self._track_frame(frame_idx, reverse)

    def _require_prompts(self) -> None:
        if not any(tracked.results[True] for tracked in self._objects.values()):
            raise ValueError("the tracker has no prompted frame to track from; add a prompt with add_prompt first")

    def _track_frame(self, frame_idx: int, reverse: bool) -> OnnxVideoFrame:
        self._require_prompts()
        objects = list(self._objects.values())
        reused = [None] * len(objects)
        for is_conditioning in (True, False):
            if frame_idx in self._consolidated[is_conditioning]:
                reused = [tracked.results[is_conditioning].get(frame_idx) for tracked in objects]
                break
        groups: dict[FramePlan, list[TrackedObject]] = {}
        for tracked, result in zip(objects, reused):
            if result is None:
                groups.setdefault(self._plan(tracked, frame_idx, reverse), []).append(tracked)
        for plan, group in groups.items():
            self._track_objects(frame_idx, plan, group)
        for tracked in objects:
            tracked.tracked_frames[frame_idx] = reverse
        output = self._frame_output(frame_idx, [tracked.find(frame_idx) for tracked in objects])
        self._forget_old_results(frame_idx, reverse)
        return output

    def _track_objects(self, frame_idx: int, plan: FramePlan, objects: list[TrackedObject]) -> None:
        """A batch of objects on a frame from their memories; results already computed from the
        same stored memories are kept as they are (recomputing would give them again)."""
        read = tuple(self._stored(tracked, entry).serial for tracked in objects for entry in plan.spatial + plan.pointers)
        key = (frame_idx, plan, read, tuple(tracked.obj_id for tracked in objects), self._num_frames)
        stored = [tracked.results[False].get(frame_idx) for tracked in objects]
        if all(result is not None and result.computed_from == key for result in stored):
            return
        batch = len(objects)
        no_click = np.zeros((batch, 2, 2), dtype=np.float32)  # a "not a point" token and the padding point
        no_click_labels = np.full((batch, 2), -1, dtype=np.int64)
        no_mask = np.zeros((batch, 1, self.mask_size, self.mask_size), dtype=np.float32)
        multimask = self._use_multimask(False, 0)
        mask_logits, object_pointer, object_score_logits, memory_tokens = self._run_step(
            frame_idx, plan, objects, no_click, no_click_labels, no_mask, has_mask=False, multimask=multimask
        )
        mask_logits = fill_holes(mask_logits, self.fill_hole_area)
        for row, tracked in enumerate(objects):
            tracked.results[False][frame_idx] = StoredResult(
                mask_logits[row],
                object_pointer[row],
                object_score_logits[row, 0],
                self._stored_memory(memory_tokens[row]),
                computed_from=key,
            )

    def _plan(self, tracked: TrackedObject, frame_idx: int, reverse: bool) -> FramePlan:
        return plan_frame(self.settings, list(tracked.results[True]), tracked.results[False], frame_idx, reverse, self._num_frames)

    def _stored(self, tracked: TrackedObject, entry: PlannedMemory) -> StoredResult:
        return tracked.results[entry.is_conditioning][entry.frame_idx]

    def _run_step(self, frame_idx, plan: FramePlan, objects, coordinates, labels, mask_input, has_mask: bool, multimask: bool):
        """The tracking step graph on a frame for `objects`, their planned memories in the slots."""
        if len(plan.spatial) > self.num_memory_slots or len(plan.pointers) > self.num_pointer_slots:
            raise ValueError(
                f"frame {frame_idx} reads {len(plan.spatial)} memories and {len(plan.pointers)} object pointers, more "
                f"than the export's {self.num_memory_slots} and {self.num_pointer_slots} slots (too many prompted "
                "frames at once): export again with more extra_conditioning_slots"
            )
        feat_s0, feat_s1, vision_features = self._frame_features(frame_idx)
        slots = fill_slots(
            plan,
            [[self._stored(tracked, entry) for entry in plan.spatial + plan.pointers] for tracked in objects],
            self._slot_shapes,
            largest_distance=max(min(self._num_frames, self.settings["max_object_pointers_in_encoder"]) - 1, 1),
        )
        outputs = self._sessions[TRACKING_STEP].run(
            None,
            {
                "vision_features": vision_features,
                "high_res_feat_s0": feat_s0,
                "high_res_feat_s1": feat_s1,
                **{name: values.astype(self.dtype) if values.dtype == np.float32 else values for name, values in slots.items()},
                "point_coords": coordinates.astype(self.dtype),
                "point_labels": labels.astype(np.int64),
                "mask_input": mask_input.astype(self.dtype),
                "has_mask_input": np.array([float(has_mask)], dtype=self.dtype),
                "multimask_output": np.array([float(multimask)], dtype=self.dtype),
            },
        )
        return [output.astype(np.float32) for output in outputs]

    def _memory_window(self) -> int:
        """How many frames behind a tracked frame its memories and pointers may come from."""
        return max(self.settings["num_maskmem"], self.settings["max_object_pointers_in_encoder"])

    def _forget_old_results(self, frame_idx: int, reverse: bool) -> None:
        """With `max_stored_frames`, drops tracked results that far behind the newest tracked frame."""
        if self.max_stored_frames is None:
            return
        step = 1 if reverse else -1
        for tracked in self._objects.values():
            old = [t for t in tracked.results[False] if (t - frame_idx) * step > self.max_stored_frames]
            for t in old:
                del tracked.results[False][t]

    # ------------------------------------------------------------------ outputs

    def _frame_output(self, frame_idx: int, results: list[StoredResult]) -> OnnxVideoFrame:
        return OnnxVideoFrame(
            frame_idx,
            self.object_ids,
            np.stack([result.mask_logits for result in results]),
            np.array([result.object_score for result in results], dtype=np.float32),
        )

    def masks(self, frame: OnnxVideoFrame, binarize: bool = True, mask_threshold: float = 0.0) -> np.ndarray:
        """(num_objects, height, width) masks at the video's size (bool, or float32 logits)."""
        logits = upsample_logits(frame.mask_logits[:, 0], self.video_size)
        return logits > mask_threshold if binarize else logits


def _frame_size(frame) -> tuple[int, int]:
    if hasattr(frame, "size") and hasattr(frame, "mode"):  # PIL: (width, height)
        return frame.size[1], frame.size[0]
    return tuple(np.shape(frame)[:2])
