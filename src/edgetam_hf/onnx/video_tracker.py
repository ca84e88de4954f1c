"""`OnnxVideoTracker`: objects tracked through a video by the exported graphs, with NumPy and
onnxruntime alone (no torch).

The session semantics are those of `EdgeTamVideoModel` driven by `EdgeTamVideoProcessor` (see
`edgetam_hf.video.propagation`): a prompt on a frame an object has not been run on is an initial
conditioning frame, segmented without memory; on a frame already tracked it is a correction,
segmented with the memory and the previous logits. A mask prompt is the result itself, on any
frame (the original's `_use_mask_as_output`). Removing an object, or an object's prompts on a
frame, keeps the other objects' results. Before tracking, prompt results are
consolidated: every object gets a result on every prompted frame (a placeholder without one) and
a memory encoded from its binarised mask. Tracking reuses those and runs every other frame from
the memory bank, objects that read the same memories in one batch.

Frames come as a sequence (read when needed) or one at a time with `add_frame` (streaming; see
`video_frames`). Only the features of the most recently used frames are kept, and with
`max_stored_frames` only that many tracked frames' results are kept behind the newest one, so a
stream of any length runs in bounded memory.
"""

from pathlib import Path

import numpy as np

from ..tracking_order import frames_to_track
from .hole_filling import fill_holes
from .image_ops import upsample_logits, video_pixel_values
from .manifest import IMAGE_ENCODER, MASK_PROMPT, MEMORY_ENCODER, TRACKING_STEP, read_manifest
from .memory_plan import FramePlan, PlannedMemory, fill_slots, memory_window, plan_frame
from .video_frames import OnnxVideoFrames
from .video_prompts import check_prompt, mask_prompt, point_prompt, with_padding_point
from .video_state import OnnxVideoFrame, PointPrompt, StoredResult, TrackedObject, TrackedObjects, round_to_bfloat16

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
        self.folder = Path(folder).expanduser()
        self.manifest = read_manifest(self.folder, video=True)
        self.settings = self.manifest["video"]
        if max_stored_frames is not None and max_stored_frames < self.memory_window:
            raise ValueError(
                f"max_stored_frames must be at least {self.memory_window} (the frames a tracked frame reads); "
                f"got {max_stored_frames}"
            )
        preprocessing = self.manifest["preprocessing"]
        self.image_size = int(preprocessing["image_size"])
        self.mask_size = int(preprocessing["mask_size"])
        self.dtype = np.dtype(self.manifest["dtype"])
        self.memory_dtype = memory_dtype
        self.max_stored_frames = max_stored_frames
        self._sessions = {
            name: onnxruntime.InferenceSession(
                str(self.folder / self.manifest["graphs"][name]["file"]),
                sess_options=session_options,
                providers=providers or ["CPUExecutionProvider"],
            )
            for name in (IMAGE_ENCODER, MEMORY_ENCODER, TRACKING_STEP, MASK_PROMPT)
            if name in self.manifest["graphs"]  # exports older than mask prompts lack MASK_PROMPT
        }
        step_inputs = {value["name"]: value["shape"] for value in self.manifest["graphs"][TRACKING_STEP]["inputs"]}
        # Per object: (S, T, mem_dim) memory slots and (P, hidden) pointer slots.
        self._slot_shapes = tuple(step_inputs["memory_tokens"][1:]), tuple(step_inputs["object_pointers"][1:])
        self.num_memory_slots, self.num_pointer_slots = self._slot_shapes[0][0], self._slot_shapes[1][0]
        self.no_object_pointer = np.asarray(self.settings["no_object_pointer"], dtype=np.float32)
        if fill_hole_area is not None and (isinstance(fill_hole_area, bool) or not isinstance(fill_hole_area, int) or fill_hole_area < 0):
            raise ValueError(f"fill_hole_area must be an int >= 0 or None, got {fill_hole_area!r}")
        self.fill_hole_area = self.settings["fill_hole_area"] if fill_hole_area is None else fill_hole_area

        self._frames = OnnxVideoFrames(frames, self._encode, max_cached_features, video_size)
        self.is_streaming = self._frames.is_streaming
        self.reset()

    # ------------------------------------------------------------------ frames

    @property
    def num_frames(self) -> int:
        return self._frames.num_frames

    @property
    def video_size(self) -> tuple[int, int] | None:
        """(height, width) of the frames (of a stream: known from its first frame)."""
        return self._frames.video_size

    @property
    def memory_window(self) -> int:
        """The fewest `max_stored_frames` that keeps every memory a later frame reads."""
        return memory_window(self.settings)

    def add_frame(self, frame) -> int:
        """Streams in the next frame (its features are computed now); returns its index."""
        return self._frames.add(frame)

    def _encode(self, frame):
        pixel_values = video_pixel_values(
            frame, self.image_size, self.manifest["preprocessing"]["image_mean"], self.manifest["preprocessing"]["image_std"]
        )
        return tuple(self._sessions[IMAGE_ENCODER].run(None, {"pixel_values": pixel_values.astype(self.dtype)}))

    def _check_frame(self, frame_idx, name: str = "frame_idx") -> None:
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, int) or not 0 <= frame_idx < self.num_frames:
            raise ValueError(f"{name} must be the index of a frame of the video (0 to {self.num_frames - 1}); got {frame_idx!r}")

    # ------------------------------------------------------------------ prompts

    def reset(self) -> None:
        """Forgets every object, prompt and result (the frames stay)."""
        self._objects = TrackedObjects()

    @property
    def object_ids(self) -> list[int]:
        return self._objects.ids

    def add_prompt(
        self, frame_idx: int, obj_id: int, points=None, labels=None, box=None, mask=None, clear_old_inputs: bool = True
    ) -> OnnxVideoFrame:
        """Segments one object on one frame from clicks and / or a box, or from a mask, and returns
        every object's result on that frame (`EdgeTamVideoProcessor.add_inputs_to_inference_session`
        then the model's call on the frame).

        Args:
            frame_idx: the frame; when streaming, one that has arrived.
            obj_id: the object (an int); a new id adds an object.
            points: [[x, y], ...] in video pixels; labels: 1 positive, 0 negative (default all 1).
            box: [x0, y0, x1, y1] in video pixels.
            mask: a binary (height, width) mask of the frame (nonzero is foreground); not with
                points or a box. It becomes the object's result as it is, on any frame.
            clear_old_inputs: replace the object's prompts on this frame (True), or add the clicks
                after its earlier clicks there (False; not with a box, nor mixed with a mask).
        """
        self._check_frame(frame_idx)
        existing = self._objects.by_id.get(obj_id) if isinstance(obj_id, int) else None
        check_prompt(obj_id, points, box, mask, clear_old_inputs, existing, frame_idx)
        tracked = existing if existing is not None else TrackedObject(obj_id)  # added once its prompt has run
        is_conditioning = frame_idx not in tracked.tracked_frames
        if mask is not None:
            model_mask = mask_prompt(mask, self.video_size, self.image_size)
            result = self._predict_from_mask(frame_idx, model_mask)
            tracked.set_mask_prompt(frame_idx, model_mask)
        else:
            prompt = tracked.clicks_with(frame_idx, point_prompt(points, labels, box, self.video_size, self.image_size), not clear_old_inputs)
            result = self._predict_from_points(tracked, frame_idx, prompt, is_conditioning)
            tracked.set_point_prompt(frame_idx, prompt)
        self._objects.add(tracked)
        # Kept until tracking takes it in (original: `temp_output_dict_per_obj`).
        tracked.prompt_results[is_conditioning][frame_idx] = result
        return self._prompted_frame_output(frame_idx, is_conditioning)

    def _predict_from_points(self, tracked: TrackedObject, frame_idx: int, prompt: PointPrompt, is_conditioning: bool) -> StoredResult:
        """Clicks on an initial conditioning frame (no memory) or a correction (memory and the
        previous logits, clamped, as a mask prompt)."""
        previous = tracked.latest(frame_idx, is_conditioning)
        mask_input = np.zeros((1, 1, self.mask_size, self.mask_size), dtype=np.float32)
        if previous is not None:
            mask_input = np.clip(previous.mask_logits, -PREVIOUS_LOGITS_CLAMP, PREVIOUS_LOGITS_CLAMP)[None]
        plan = FramePlan((), ())
        if not is_conditioning:
            plan = self._plan(tracked, frame_idx, tracked.tracked_frames[frame_idx])
        mask_logits, object_pointer, object_score_logits, _ = self._run_step(
            frame_idx,
            plan,
            [tracked],
            *with_padding_point(prompt),
            mask_input,
            has_mask=previous is not None,
            multimask=self._use_multimask(is_conditioning, prompt.labels.shape[1]),
        )
        return StoredResult(fill_holes(mask_logits[0], self.fill_hole_area), object_pointer[0], object_score_logits[0, 0])

    def _predict_from_mask(self, frame_idx: int, model_mask: np.ndarray) -> StoredResult:
        """A mask prompt as the result: +-10 logits, the object present where the mask is not
        empty, the pointer of the mask decoded without memory (the mask prompt graph)."""
        session = self._sessions.get(MASK_PROMPT)
        if session is None:
            raise ValueError(f"{self.folder} has no {MASK_PROMPT} graph (an export by an older edgetam-hf): export again for mask prompts")
        feat_s0, feat_s1, vision_features = self._frames.features(frame_idx)
        inputs = {"vision_features": vision_features, "high_res_feat_s0": feat_s0, "high_res_feat_s1": feat_s1}
        outputs = session.run(None, {**inputs, "mask_prompt": model_mask.astype(self.dtype)})
        mask_logits, object_pointer, object_score_logits = (output.astype(np.float32) for output in outputs)
        return StoredResult(fill_holes(mask_logits[0], self.fill_hole_area), object_pointer[0], object_score_logits[0, 0])

    def _use_multimask(self, is_initial_conditioning: bool, num_points: int) -> bool:
        settings = self.settings
        return (
            settings["multimask_output_in_sam"]
            and (is_initial_conditioning or settings["multimask_output_for_tracking"])
            and settings["multimask_min_pt_num"] <= num_points <= settings["multimask_max_pt_num"]
        )

    def _prompted_frame_output(self, frame_idx: int, is_conditioning: bool) -> OnnxVideoFrame:
        """Every object's latest result on a prompted frame, placeholders for objects without one."""
        results = [tracked.latest(frame_idx, is_conditioning) for tracked in self._objects]
        return self._frame_output(frame_idx, [result if result is not None else self._placeholder() for result in results])

    def clear_prompts_in_frame(self, frame_idx: int, obj_id: int) -> OnnxVideoFrame:
        """Removes one object's prompts on one frame (the model's `clear_prompts_in_frame`): a frame
        left without prompts is no longer a conditioning frame (its results are recomputed by the
        next propagation), and with no conditioning frame left every result is forgotten.
        Returns every object's result on the frame."""
        self._check_frame(frame_idx)
        self._objects.clear_prompts(self._objects.get(obj_id), frame_idx)
        return self._prompted_frame_output(frame_idx, self._has_conditioning_prompt(frame_idx))

    def remove_object(self, obj_id: int) -> list[OnnxVideoFrame]:
        """Removes an object (the model's `remove_object`); the other objects keep their results.
        Returns every object's result on the frames where it had prompts (none if it was the only one)."""
        tracked = self._objects.get(obj_id)
        if len(self._objects) == 1:
            self.reset()
            return []
        prompted_frames = self._objects.remove(tracked)
        return [self._prompted_frame_output(t, self._has_conditioning_prompt(t)) for t in prompted_frames]

    def _has_conditioning_prompt(self, frame_idx: int) -> bool:
        return any(frame_idx in tracked.prompt_results[True] for tracked in self._objects)

    # ------------------------------------------------------------------ consolidation

    def _prepare_tracking(self) -> None:
        """Merges prompt results into the memory bank (original: `propagate_in_video_preflight`)."""
        objects = list(self._objects)
        for is_conditioning in (False, True):
            # A set walked as the PyTorch session walks it: the order of conditioning memories.
            frames = set()
            for tracked in objects:
                frames.update(tracked.prompt_results[is_conditioning].keys())
            self._objects.consolidated[is_conditioning].update(frames)
            for frame_idx in frames:
                self._consolidate(frame_idx, is_conditioning, objects)
            for tracked in objects:
                tracked.prompt_results[is_conditioning].clear()
        for frame_idx in sorted(self._objects.consolidated[True]):  # objects that joined after a prompted frame
            missing = [tracked for tracked in objects if tracked.find(frame_idx) is None]
            if missing:
                self._consolidate(frame_idx, True, missing)
        for tracked in objects:
            for frame_idx in tracked.results[True]:
                tracked.results[False].pop(frame_idx, None)
        self._objects.consolidated[False] -= self._objects.consolidated[True]

    def _consolidate(self, frame_idx: int, is_conditioning: bool, objects: list[TrackedObject]) -> None:
        """Every object's latest result on a prompted frame (a placeholder without one), with a
        memory encoded from the binarised masks, in one batch."""
        results = [tracked.latest(frame_idx, is_conditioning) for tracked in objects]
        results = [result if result is not None else self._placeholder() for result in results]
        vision_features = self._frames.features(frame_idx)[2]
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
            start_frame_idx = min(t for tracked in self._objects for t in tracked.results[True])
        self._check_frame(start_frame_idx, "start_frame_idx")
        order = frames_to_track(start_frame_idx, max_frame_num_to_track, reverse, self.num_frames)
        for frame_idx in order:
            yield self._track_frame(frame_idx, reverse)

    def track(self, frame_idx: int, reverse: bool = False) -> OnnxVideoFrame:
        """One frame of tracking (when streaming: the frame just added), as `model(session, frame_idx=...)`."""
        self._check_frame(frame_idx)
        self._prepare_tracking()
        return self._track_frame(frame_idx, reverse)

    def _require_prompts(self) -> None:
        if not any(tracked.results[True] for tracked in self._objects):
            raise ValueError("the tracker has no prompted frame to track from; add a prompt with add_prompt first")

    def _track_frame(self, frame_idx: int, reverse: bool) -> OnnxVideoFrame:
        self._require_prompts()
        objects = list(self._objects)
        reused = [None] * len(objects)
        for is_conditioning in (True, False):
            if frame_idx in self._objects.consolidated[is_conditioning]:
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
        if self.max_stored_frames is not None:
            self._objects.forget_tracked_behind(frame_idx, reverse, self.max_stored_frames)
        self._frames.forget_streamed_before(frame_idx, self._objects.frames_with_prompts())
        return output

    def _track_objects(self, frame_idx: int, plan: FramePlan, objects: list[TrackedObject]) -> None:
        """A batch of objects on a frame from their memories; results already computed from the
        same stored memories are kept as they are (recomputing would give them again)."""
        read = tuple(self._stored(tracked, entry).serial for tracked in objects for entry in plan.spatial + plan.pointers)
        key = (frame_idx, plan, read, tuple(tracked.obj_id for tracked in objects), self.num_frames)
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
        return plan_frame(self.settings, list(tracked.results[True]), tracked.results[False], frame_idx, reverse, self.num_frames)

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
        feat_s0, feat_s1, vision_features = self._frames.features(frame_idx)
        slots = fill_slots(
            plan,
            [[self._stored(tracked, entry) for entry in plan.spatial + plan.pointers] for tracked in objects],
            self._slot_shapes,
            largest_distance=max(min(self.num_frames, self.settings["max_object_pointers_in_encoder"]) - 1, 1),
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

