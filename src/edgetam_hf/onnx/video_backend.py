"""`OnnxTrackingBackend`: the tensor work of `edgetam_hf.tracking.tracker` done by the exported
video graphs with onnxruntime and NumPy (no torch). Results have the PyTorch session's shapes:
mask logits (1, 1, S, S), object pointer (1, hidden), object score (1, 1), memory (1, T, mem_dim)."""

import numpy as np

from ..conventions import MASK_LOGITS_CLAMP
from ..tracking.records import NO_OBJECT_SCORE, PLACEHOLDER_OBJECT_SCORE, FrameResult, PointPrompt
from ..tracking.rules import MemoryPlan, TrackingRules
from .hole_filling import fill_holes
from .manifest import MASK_PROMPT, MEMORY_ENCODER, TRACKING_STEP
from .memory_plan import fill_slots
from .video_frames import OnnxVideoFrames
from .video_prompts import with_padding_point
from .video_state import OnnxVideoFrame, round_to_bfloat16


class OnnxTrackingBackend:
    """The graphs of one export folder (`sessions` by graph name) run on the frames of one video
    (see `tracking.tracker.TrackingBackend`).

    Args:
        settings: the manifest's "video" entry.
        slot_shapes: the tracking step's per-object (S, T, mem_dim) memory and (P, hidden) pointer slots.
        keep_behind: `OnnxVideoTracker`'s `max_stored_frames`.
    """

    # The graphs are fixed once exported: every result stays valid for the tracker's life.
    revision = 0

    def __init__(
        self, sessions: dict, folder, settings: dict, frames: OnnxVideoFrames, dtype: np.dtype, mask_size: int,
        slot_shapes: tuple, memory_dtype: str, fill_hole_area: int, keep_behind: int | None,
    ):
        self._sessions = sessions
        self._folder = folder
        self.settings = settings
        self.rules = TrackingRules.read(settings)
        self._frames = frames
        self._dtype = dtype
        self._mask_size = mask_size
        self._slot_shapes = slot_shapes
        self._memory_dtype = memory_dtype
        self._fill_hole_area = fill_hole_area
        self.keep_behind = keep_behind
        self._no_object_pointer = np.asarray(settings["no_object_pointer"], dtype=np.float32)[None]

    @property
    def num_frames(self) -> int:
        return self._frames.num_frames

    def check_frame_idx(self, frame_idx, name: str = "frame_idx") -> None:
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, int) or not 0 <= frame_idx < self.num_frames:
            raise ValueError(f"{name} must be the index of a frame of the video (0 to {self.num_frames - 1}); got {frame_idx!r}")

    def frame_features(self, frame_idx: int):
        return self._frames.features(frame_idx)

    def predict_from_mask(self, features, mask: np.ndarray) -> FrameResult:
        """A mask prompt as the result: +-10 logits, the object present where the mask is not
        empty, the pointer of the mask decoded without memory (the mask prompt graph)."""
        session = self._sessions.get(MASK_PROMPT)
        if session is None:
            raise ValueError(f"{self._folder} has no {MASK_PROMPT} graph (an export by an older edgetam-hf): export again for mask prompts")
        feat_s0, feat_s1, vision_features = features
        inputs = {"vision_features": vision_features, "high_res_feat_s0": feat_s0, "high_res_feat_s1": feat_s1}
        outputs = session.run(None, {**inputs, "mask_prompt": mask.astype(self._dtype)})
        mask_logits, object_pointer, object_score_logits = (output.astype(np.float32) for output in outputs)
        return FrameResult(fill_holes(mask_logits, self._fill_hole_area), object_pointer, object_score_logits)

    def predict_from_points(
        self, features, plan: MemoryPlan | None, stored: list[FrameResult], points: PointPrompt, previous, multimask: bool
    ) -> FrameResult:
        mask_input = np.zeros((1, 1, self._mask_size, self._mask_size), dtype=np.float32)
        if previous is not None:
            mask_input = np.clip(previous.mask_logits, -MASK_LOGITS_CLAMP, MASK_LOGITS_CLAMP)
        mask_logits, object_pointer, object_score_logits, _ = self._run_step(
            features,
            plan or MemoryPlan((), ()),
            [stored],
            *with_padding_point(points),
            mask_input,
            has_mask=previous is not None,
            multimask=multimask,
        )
        return FrameResult(fill_holes(mask_logits, self._fill_hole_area), object_pointer, object_score_logits)

    def track(self, features, plan: MemoryPlan, stored: list[list[FrameResult]], multimask: bool) -> list[FrameResult]:
        batch = len(stored)
        no_click = np.zeros((batch, 2, 2), dtype=np.float32)  # a "not a point" token and the padding point
        no_click_labels = np.full((batch, 2), -1, dtype=np.int64)
        no_mask = np.zeros((batch, 1, self._mask_size, self._mask_size), dtype=np.float32)
        mask_logits, object_pointer, object_score_logits, memory_tokens = self._run_step(
            features, plan, stored, no_click, no_click_labels, no_mask, has_mask=False, multimask=multimask
        )
        mask_logits = fill_holes(mask_logits, self._fill_hole_area)
        return [
            FrameResult(
                mask_logits[row : row + 1],
                object_pointer[row : row + 1],
                object_score_logits[row : row + 1],
                self._stored_memory(memory_tokens[row : row + 1]),
            )
            for row in range(batch)
        ]

    def encode_prompted_memories(self, features, results: list[FrameResult]) -> list[np.ndarray]:
        (memory_tokens,) = self._sessions[MEMORY_ENCODER].run(
            None,
            {
                "vision_features": features[2],
                "mask_logits": np.concatenate([result.mask_logits for result in results]).astype(self._dtype),
                "object_score_logits": np.concatenate([result.object_score_logits for result in results]).astype(self._dtype),
            },
        )
        return [self._stored_memory(memory_tokens[row : row + 1]) for row in range(len(results))]

    def placeholder(self) -> FrameResult:
        return FrameResult(
            np.full((1, 1, self._mask_size, self._mask_size), NO_OBJECT_SCORE, dtype=np.float32),
            self._no_object_pointer,
            np.full((1, 1), PLACEHOLDER_OBJECT_SCORE, dtype=np.float32),
        )

    def frame_output(self, frame_idx: int, obj_ids: list[int], results: list[FrameResult]) -> OnnxVideoFrame:
        return OnnxVideoFrame(
            frame_idx,
            obj_ids,
            np.concatenate([result.mask_logits for result in results]),
            np.concatenate([result.object_score_logits for result in results])[:, 0],
        )

    def frames_forgotten(self, frame_idx: int, frames: set[int]) -> None:
        """Nothing to drop: a stream drops old pixels after every frame (`OnnxVideoTracker`)."""

    def _stored_memory(self, memory_tokens: np.ndarray) -> np.ndarray:
        memory_tokens = memory_tokens.astype(np.float32)
        return round_to_bfloat16(memory_tokens) if self._memory_dtype == "bfloat16" else memory_tokens

    def _run_step(self, features, plan: MemoryPlan, stored, coordinates, labels, mask_input, has_mask: bool, multimask: bool):
        """The tracking step graph on a frame for a batch of objects, their planned memories in the slots."""
        num_memory_slots, num_pointer_slots = self._slot_shapes[0][0], self._slot_shapes[1][0]
        if len(plan.spatial) > num_memory_slots or len(plan.pointers) > num_pointer_slots:
            raise ValueError(
                f"a frame reads {len(plan.spatial)} memories and {len(plan.pointers)} object pointers, more than "
                f"the export's {num_memory_slots} and {num_pointer_slots} slots (too many prompted frames at once): "
                "export again with more extra_conditioning_slots"
            )
        feat_s0, feat_s1, vision_features = features
        largest_distance = max(min(self.num_frames, self.rules.max_object_pointers_in_encoder) - 1, 1)
        slots = fill_slots(plan, stored, self._slot_shapes, largest_distance)
        outputs = self._sessions[TRACKING_STEP].run(
            None,
            {
                "vision_features": vision_features,
                "high_res_feat_s0": feat_s0,
                "high_res_feat_s1": feat_s1,
                **{name: values.astype(self._dtype) if values.dtype == np.float32 else values for name, values in slots.items()},
                "point_coords": coordinates.astype(self._dtype),
                "point_labels": labels.astype(np.int64),
                "mask_input": mask_input.astype(self._dtype),
                "has_mask_input": np.array([float(has_mask)], dtype=self._dtype),
                "multimask_output": np.array([float(multimask)], dtype=self._dtype),
            },
        )
        return [output.astype(np.float32) for output in outputs]
