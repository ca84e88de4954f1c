"""The PyTorch backend of the tracker: `edgetam_hf.tracking.tracker` holds the rules (prompts,
corrections, consolidation, the memory plan, bounded forgetting), `TorchTrackingBackend` does
their tensor work with an `EdgeTamVideoModel` on an `EdgeTamVideoInferenceSession`.

The calls here are what the model's session API runs; inference needs no autograd graph, so
they run under `torch.no_grad()` (the steps themselves keep gradients for training).
"""

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ..conventions import MASK_LOGITS_CLAMP
from ..outputs import EdgeTamVideoSegmentationOutput
from ..tracking import tracker
from ..tracking.records import NO_OBJECT_SCORE, PLACEHOLDER_OBJECT_SCORE, FrameResult, PointPrompt
from ..tracking.rules import MemoryPlan, TrackingRules
from .hole_filling import fill_holes
from .memory_bank import gather_memory_slots
from .session import EdgeTamVideoInferenceSession
from .step import memory_context, track_step
from .types import FrameFeatures, FramePrediction


class TorchTrackingBackend:
    """The tensor work of tracking with `model` on `session` (see `tracking.tracker.TrackingBackend`)."""

    def __init__(self, model, session: EdgeTamVideoInferenceSession):
        self.model = model
        self.session = session
        self.rules = TrackingRules.read(model.config)
        self.revision = (model.state_revision, session.memory_dtype)
        self.keep_behind = self.rules.memory_window if session.bounded else None

    @property
    def num_frames(self) -> int:
        return self.session.num_frames

    def check_frame_idx(self, frame_idx, name: str = "frame_idx") -> None:
        self.session.check_frame_idx(frame_idx, name=name)

    def frame_features(self, frame_idx: int) -> FrameFeatures:
        return self.session.frame_features(self.model, frame_idx)

    def predict_from_mask(self, features: FrameFeatures, mask: torch.Tensor) -> FrameResult:
        return self._result(self.model.predict_from_mask(features, mask))

    def predict_from_points(
        self, features, plan: MemoryPlan | None, stored: list[FrameResult], points: PointPrompt, previous, multimask: bool
    ) -> FrameResult:
        device = self.session.inference_device
        memory = None
        if plan is not None:
            slots = gather_memory_slots(plan, [stored], device)
            memory = memory_context(self.model, slots, self.session.memory_position, self.num_frames)
        previous_logits = None
        if previous is not None:
            previous_logits = torch.clamp(previous.mask_logits.to(device), -MASK_LOGITS_CLAMP, MASK_LOGITS_CLAMP)
        prediction = self.model.predict_from_prompts(
            features, memory, points.coordinates.to(device), points.labels.to(device), previous_logits, multimask
        )
        return self._result(prediction)

    def track(self, features, plan: MemoryPlan, stored: list[list[FrameResult]], multimask: bool) -> list[FrameResult]:
        session = self.session
        slots = gather_memory_slots(plan, stored, session.inference_device)
        step = track_step(self.model, features, slots, session.memory_position, self.num_frames, multimask)
        # The output's small holes are filled; the memory was encoded from the mask as predicted.
        mask_logits = fill_holes(step.mask_logits, self.model.config.fill_hole_area)
        return [
            FrameResult(
                mask_logits=mask_logits[row : row + 1].to(session.inference_state_device),
                object_pointer=step.object_pointer[row : row + 1],
                object_score_logits=step.object_score_logits[row : row + 1],
                memory_tokens=self._stored_memory(step.memory_tokens[row : row + 1]),
            )
            for row in range(len(stored))
        ]

    def encode_prompted_memories(self, features, results: list[FrameResult]) -> list[torch.Tensor]:
        device = self.session.inference_device
        mask_logits = torch.cat([result.mask_logits.to(device) for result in results])
        image_size = self.model.config.image_size
        high_res_logits = F.interpolate(mask_logits, size=(image_size, image_size), mode="bilinear", align_corners=False)
        scores = torch.cat([result.object_score_logits.to(device) for result in results])
        memory = self.model.encode_memory(features, high_res_logits, scores, binarize_mask=True)
        self.session.keep_memory_position(memory.memory_position)
        return [self._stored_memory(memory.memory_tokens[row : row + 1]) for row in range(len(results))]

    def placeholder(self) -> FrameResult:
        # The pointer of an empty mask: judged absent, it is the learned no-object pointer.
        device = self.session.inference_state_device
        return FrameResult(
            mask_logits=torch.full((1, 1, *self.model.prompt_encoder.mask_input_size), NO_OBJECT_SCORE, device=device),
            object_pointer=self.model.no_object_pointer.detach().float().to(device),
            object_score_logits=torch.full((1, 1), PLACEHOLDER_OBJECT_SCORE, device=device),
        )

    def frame_output(self, frame_idx: int, obj_ids: list[int], results: list[FrameResult]) -> EdgeTamVideoSegmentationOutput:
        return frame_output(frame_idx, obj_ids, results, self.session.inference_device)

    def frames_forgotten(self, frame_idx: int, frames: set[int]) -> None:
        self.session.frames_forgotten(frame_idx, frames)

    def _result(self, prediction: FramePrediction) -> FrameResult:
        """A prediction of one object as a result, holes filled as the original post-processes."""
        mask_logits = fill_holes(prediction.mask_logits, self.model.config.fill_hole_area)
        return FrameResult(
            mask_logits=mask_logits.to(self.session.inference_state_device),
            object_pointer=prediction.object_pointer,
            object_score_logits=prediction.object_score_logits,
        )

    def _stored_memory(self, memory_tokens: torch.Tensor) -> torch.Tensor:
        return memory_tokens.to(self.session.memory_dtype).to(self.session.inference_state_device)


def frame_output(frame_idx: int, obj_ids: list[int], results: list[FrameResult], device) -> EdgeTamVideoSegmentationOutput:
    """Every object's result on one frame as the model's output."""
    return EdgeTamVideoSegmentationOutput(
        object_ids=obj_ids,
        pred_masks=torch.cat([result.mask_logits.to(device) for result in results]),
        object_score_logits=torch.cat([result.object_score_logits.to(device) for result in results]),
        frame_idx=frame_idx,
    )


@torch.no_grad()
def run_frame(model, session: EdgeTamVideoInferenceSession, frame_idx: int, reverse: bool = False):
    """`model(session, frame_idx=...)`: the frame's prompt results if prompts are waiting for it,
    else one tracking step on it."""
    return tracker.run_frame(TorchTrackingBackend(model, session), session, frame_idx, reverse)


@torch.no_grad()
def propagate(
    model,
    session: EdgeTamVideoInferenceSession,
    start_frame_idx: int | None = None,
    max_frame_num_to_track: int | None = None,
    reverse: bool = False,
) -> Iterator[EdgeTamVideoSegmentationOutput]:
    """Tracks all objects frame by frame (original: `propagate_in_video`)."""
    backend = TorchTrackingBackend(model, session)
    yield from tracker.propagate(backend, session, start_frame_idx, max_frame_num_to_track, reverse)


@torch.no_grad()
def clear_prompts_in_frame(model, session: EdgeTamVideoInferenceSession, frame_idx: int, obj_id: int) -> EdgeTamVideoSegmentationOutput:
    """Removes one object's prompts on one frame (original: `clear_all_prompts_in_frame`)."""
    return tracker.clear_prompts_in_frame(TorchTrackingBackend(model, session), session, frame_idx, obj_id)


@torch.no_grad()
def remove_object(model, session: EdgeTamVideoInferenceSession, obj_id: int) -> list[EdgeTamVideoSegmentationOutput]:
    """Removes an object (original: `remove_object`); the other objects keep their results."""
    return tracker.remove_object(TorchTrackingBackend(model, session), session, obj_id)
