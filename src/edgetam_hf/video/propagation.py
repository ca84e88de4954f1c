"""Driving the video model over a session: prompts, propagation forward and backward, removing
an object, clearing a frame's prompts. The one loop over frames is `propagate`.

The semantics are those of the original `SAM2VideoPredictor` (sam2/sam2_video_predictor.py):
  * A prompt on a frame that an object has not been run on yet makes it an initial conditioning
    frame: segmented without memory. On a frame already tracked it is a correction: segmented
    with the memory and the object's previous logits (clamped to +-32) as a mask prompt.
  * Prompt results are merged ("consolidated") before tracking: every object gets a result on
    every prompted frame, its own or, without one, a placeholder (mask logits -1024, object
    score 10, the pointer of an empty mask), and the memory of every object on that frame is
    re-encoded from the binarised masks. So a conditioning frame conditions all objects, and a
    corrected frame keeps its correction.
  * Tracking reuses the consolidated results of prompted frames as they are, and runs every
    other frame from the memory bank (see `memory_bank`).
Objects may also join after tracking started (the original refuses): the conditioning frames
they were not prompted on give them placeholders too, as if they had been there.
"""

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ..conventions import MASK_LOGITS_CLAMP
from ..tracking_order import frames_to_track
from ..outputs import EdgeTamVideoSegmentationOutput
from .hole_filling import fill_holes
from .memory_bank import MemoryPlan, frames_read, gather_memory_slots, memory_plan, memory_window, stored_result
from .records import NO_OBJECT_SCORE, PLACEHOLDER_OBJECT_SCORE, FrameResult, PendingPrompt, TrackedObject
from .session import EdgeTamVideoInferenceSession
from .step import memory_context, track_step



@torch.no_grad()
def run_frame(model, session: EdgeTamVideoInferenceSession, frame_idx: int, reverse: bool = False):
    """`model(session, frame_idx=...)`: the frame's prompt results if prompts are waiting for it,
    else one tracking step on it."""
    session.check_frame_idx(frame_idx)
    waiting = any(prompt.frame_idx == frame_idx for prompt in session.pending_prompts)
    kinds = run_pending_prompts(model, session)
    if waiting:
        return prompted_frame_output(model, session, frame_idx, kinds[frame_idx])
    prepare_tracking(model, session)
    return track_frame(model, session, frame_idx, reverse)


@torch.no_grad()
def propagate(
    model,
    session: EdgeTamVideoInferenceSession,
    start_frame_idx: int | None = None,
    max_frame_num_to_track: int | None = None,
    reverse: bool = False,
) -> Iterator[EdgeTamVideoSegmentationOutput]:
    """Tracks all objects frame by frame (original: `propagate_in_video`)."""
    run_pending_prompts(model, session)
    prepare_tracking(model, session)
    _require_prompts(session)
    for frame_idx in processing_order(session, start_frame_idx, max_frame_num_to_track, reverse):
        yield track_frame(model, session, frame_idx, reverse)


def processing_order(
    session: EdgeTamVideoInferenceSession, start_frame_idx: int | None, max_frame_num_to_track: int | None, reverse: bool
) -> range:
    """The frames a propagation visits, in order (the original's start / end rules)."""
    if start_frame_idx is None:
        start_frame_idx = min(t for tracked in session.objects.values() for t in tracked.results.conditioning)
    session.check_frame_idx(start_frame_idx, name="start_frame_idx")
    return frames_to_track(start_frame_idx, max_frame_num_to_track, reverse, session.num_frames)


# ---------------------------------------------------------------------------- prompts


def run_pending_prompts(model, session: EdgeTamVideoInferenceSession) -> dict[int, bool]:
    """Runs the prompts added since the last call, in order, except those for a streamed frame
    that has not arrived yet; returns, per frame, whether its last prompt made it a conditioning
    frame."""
    kinds = {}
    for prompt in session.take_runnable_prompts():
        kinds[prompt.frame_idx] = _run_prompt(model, session, prompt)
    return kinds


def _run_prompt(model, session: EdgeTamVideoInferenceSession, prompt: PendingPrompt) -> bool:
    """One object's prompt on one frame (original: `add_new_points_or_box` / `add_new_mask` after
    the bookkeeping of inputs). The result waits in `prompt_results`, without memory."""
    tracked = session.get_object(prompt.obj_id)
    frame_idx = prompt.frame_idx
    is_conditioning = frame_idx not in tracked.tracked_frames
    reverse = tracked.tracked_frames.get(frame_idx, False)
    features = session.frame_features(model, frame_idx)
    if prompt.mask is not None:
        prediction = model.predict_from_mask(features, prompt.mask)
    else:
        previous = tracked.prompt_results.of_kind(is_conditioning).get(frame_idx)
        previous = previous if previous is not None else tracked.results.find(frame_idx)
        previous_logits = None
        if previous is not None:
            previous_logits = previous.mask_logits.to(session.inference_device)
            previous_logits = torch.clamp(previous_logits, -MASK_LOGITS_CLAMP, MASK_LOGITS_CLAMP)
        memory = None
        if not is_conditioning:
            _check_memories_kept(model, session, frame_idx, reverse)
            plan = memory_plan(model.config, tracked.results, frame_idx, reverse, session.num_frames)
            slots = gather_memory_slots(session, [tracked], plan)
            memory = memory_context(model, slots, session.memory_position, session.num_frames)
        points = prompt.points
        prediction = model.predict_from_prompts(
            features,
            memory,
            points.coordinates.to(session.inference_device),
            points.labels.to(session.inference_device),
            previous_logits,
            _use_multimask(model.config, is_conditioning, points.labels.shape[1]),
        )
    tracked.prompt_results.of_kind(is_conditioning)[frame_idx] = _store_result(model, session, prediction, 0)
    return is_conditioning


def _use_multimask(config, is_initial_conditioning: bool, num_points: int) -> bool:
    """Three masks for a first click (a box counts as two points) and, in EdgeTAM, when tracking."""
    return (
        config.multimask_output_in_sam
        and (is_initial_conditioning or config.multimask_output_for_tracking)
        and config.multimask_min_pt_num <= num_points <= config.multimask_max_pt_num
    )


def prompted_frame_output(
    model, session: EdgeTamVideoInferenceSession, frame_idx: int, is_conditioning: bool
) -> EdgeTamVideoSegmentationOutput:
    """Every object's latest result on a prompted frame, placeholders for objects without one
    (original: the consolidation an `add_*` call returns, before any memory is encoded)."""
    results = [_latest_result(tracked, frame_idx, is_conditioning) for tracked in session.objects.values()]
    return _frame_output(session, frame_idx, [r if r is not None else _placeholder(model, session) for r in results])


def _latest_result(tracked: TrackedObject, frame_idx: int, is_conditioning: bool) -> FrameResult | None:
    result = tracked.prompt_results.of_kind(is_conditioning).get(frame_idx)
    return result if result is not None else tracked.results.find(frame_idx)


# ---------------------------------------------------------------------------- consolidation


def prepare_tracking(model, session: EdgeTamVideoInferenceSession) -> None:
    """Merges the prompt results into the memory bank (original: `propagate_in_video_preflight`)."""
    session.tracking_started = True
    objects = list(session.objects.values())
    for is_conditioning in (False, True):
        # The original walks a set of frame indices; so do we, for the same order of the
        # conditioning frames, which is the order of their memories.
        frames = set()
        for tracked in objects:
            frames.update(tracked.prompt_results.of_kind(is_conditioning).keys())
        _consolidated_frames(session, is_conditioning).update(frames)
        for frame_idx in frames:
            _consolidate(model, session, frame_idx, is_conditioning, objects)
        for tracked in objects:
            tracked.prompt_results.of_kind(is_conditioning).clear()
    _add_placeholders_for_late_objects(model, session)
    # A frame that became a conditioning frame keeps no tracked result.
    for tracked in objects:
        for frame_idx in tracked.results.conditioning:
            tracked.results.tracked.pop(frame_idx, None)
    session.consolidated_tracked_frames -= session.consolidated_conditioning_frames


def _consolidate(
    model, session: EdgeTamVideoInferenceSession, frame_idx: int, is_conditioning: bool, objects: list[TrackedObject]
) -> None:
    """Gives each of `objects` its latest result on the frame (or a placeholder) with a memory
    encoded from the binarised mask, in one batch (original: `_consolidate_temp_output_across_obj`
    with `run_mem_encoder=True`)."""
    device = session.inference_device
    results = [_latest_result(tracked, frame_idx, is_conditioning) for tracked in objects]
    features = session.frame_features(model, frame_idx)
    if any(result is None for result in results):
        empty_mask = torch.zeros(1, 1, model.config.image_size, model.config.image_size, device=device)
        empty_pointer = model.predict_from_mask(features, empty_mask).object_pointer
        placeholder = _placeholder(model, session, empty_pointer)
        results = [result if result is not None else placeholder for result in results]
    mask_logits = torch.cat([result.mask_logits.to(device) for result in results])
    high_res_logits = F.interpolate(
        mask_logits, size=(model.config.image_size,) * 2, mode="bilinear", align_corners=False
    )
    scores = torch.cat([result.object_score_logits.to(device) for result in results])
    memory = model.encode_memory(features, high_res_logits, scores, binarize_mask=True)
    session.keep_memory_position(memory.memory_position)
    for row, (tracked, result) in enumerate(zip(objects, results)):
        tracked.results.of_kind(is_conditioning)[frame_idx] = FrameResult(
            mask_logits=result.mask_logits.to(session.inference_state_device),
            object_pointer=result.object_pointer,
            object_score_logits=result.object_score_logits,
            memory_tokens=_stored_memory(session, memory.memory_tokens[row : row + 1]),
        )


def _add_placeholders_for_late_objects(model, session: EdgeTamVideoInferenceSession) -> None:
    """Objects that joined after a conditioning frame was consolidated get their placeholder
    there now. (On a consolidated correction frame they are simply tracked.)"""
    for frame_idx in sorted(session.consolidated_conditioning_frames):
        missing = [t for t in session.objects.values() if t.results.find(frame_idx) is None]
        if missing:
            _consolidate(model, session, frame_idx, True, missing)


def _placeholder(model, session: EdgeTamVideoInferenceSession, object_pointer: torch.Tensor | None = None) -> FrameResult:
    """The result of an object without one on a prompted frame; its pointer (that of an empty
    mask) only matters once it enters the memory bank."""
    device = session.inference_device
    return FrameResult(
        mask_logits=torch.full((1, 1, *model.prompt_encoder.mask_input_size), NO_OBJECT_SCORE, device=device),
        object_pointer=object_pointer,
        object_score_logits=torch.full((1, 1), PLACEHOLDER_OBJECT_SCORE, device=device),
    )


# ---------------------------------------------------------------------------- tracking


def track_frame(
    model, session: EdgeTamVideoInferenceSession, frame_idx: int, reverse: bool
) -> EdgeTamVideoSegmentationOutput:
    """One step of propagation: reuse the frame's consolidated results, else run it on memory."""
    _require_prompts(session)
    objects = list(session.objects.values())
    if frame_idx in session.consolidated_conditioning_frames:
        results = [tracked.results.conditioning.get(frame_idx) for tracked in objects]
    elif frame_idx in session.consolidated_tracked_frames:
        results = [tracked.results.tracked.get(frame_idx) for tracked in objects]
    else:
        results = [None] * len(objects)
    to_run = [tracked for tracked, result in zip(objects, results) if result is None]
    if to_run:
        _check_memories_kept(model, session, frame_idx, reverse)
    for plan, group in _group_by_memory_plan(model, session, to_run, frame_idx, reverse).items():
        _track_objects(model, session, plan, group, frame_idx)
    for tracked in objects:
        tracked.tracked_frames[frame_idx] = reverse
    output = _frame_output(session, frame_idx, [tracked.results.find(frame_idx) for tracked in objects])
    session.forget_frames_behind(frame_idx, reverse, memory_window(model.config))
    return output


def _check_memories_kept(model, session: EdgeTamVideoInferenceSession, frame_idx: int, reverse: bool) -> None:
    """A bounded session refuses to track a frame from memories it has forgotten (the result
    would differ from a keep-everything session's)."""
    for t in frames_read(model.config, frame_idx, reverse, session.num_frames):
        if t in session.forgotten_frames:
            raise ValueError(
                f"frame {frame_idx} would read the memory of frame {t}, which this bounded session has forgotten "
                "(it keeps the conditioning frames, the frames next to them and the last frames tracked); start "
                "the session with bounded=False to track over old frames again"
            )


def _group_by_memory_plan(
    model, session, objects: list[TrackedObject], frame_idx: int, reverse: bool
) -> dict[MemoryPlan, list[TrackedObject]]:
    """Objects that read the same memories are run in one batch: all of them, in the original's
    order, unless objects joined after tracking started."""
    groups = {}
    for tracked in objects:
        plan = memory_plan(model.config, tracked.results, frame_idx, reverse, session.num_frames)
        groups.setdefault(plan, []).append(tracked)
    return groups


def _track_objects(model, session, plan: MemoryPlan, objects: list[TrackedObject], frame_idx: int) -> None:
    """Tracks a batch of objects on a frame and stores their results with a new memory
    (original: `_run_single_frame_inference` with `run_mem_encoder=True`).

    The original recomputes a frame on every propagation over it; when nothing the computation
    reads has changed since the stored results were made (e.g. the frames before a correction),
    recomputing gives them again bit for bit, so they are kept.
    """
    key = _tracking_key(model, session, plan, objects, frame_idx)
    stored = [tracked.results.tracked.get(frame_idx) for tracked in objects]
    if all(result is not None and result.computed_from == key for result in stored):
        return
    features = session.frame_features(model, frame_idx)
    slots = gather_memory_slots(session, objects, plan)
    step = track_step(
        model, features, slots, session.memory_position, session.num_frames, _use_multimask(model.config, False, 0)
    )
    session.remember_frame(frame_idx)
    for row, tracked in enumerate(objects):
        tracked.results.tracked[frame_idx] = FrameResult(
            mask_logits=step.mask_logits[row : row + 1].to(session.inference_state_device),
            object_pointer=step.object_pointer[row : row + 1],
            object_score_logits=step.object_score_logits[row : row + 1],
            memory_tokens=_stored_memory(session, step.memory_tokens[row : row + 1]),
            computed_from=key,
        )


def _tracking_key(model, session, plan: MemoryPlan, objects: list[TrackedObject], frame_idx: int) -> tuple:
    """What a tracked result depends on: the frame, the batch, the stored results it reads (by
    serial number) and the model's weights and settings (its `state_revision`)."""
    read = tuple(stored_result(tracked, entry).serial for tracked in objects for entry in plan.spatial + plan.pointers)
    return (
        frame_idx,
        plan,
        read,
        tuple(tracked.obj_id for tracked in objects),
        session.num_frames,
        session.memory_dtype,
        model.state_revision,
    )


def _require_prompts(session: EdgeTamVideoInferenceSession) -> None:
    if not any(tracked.results.conditioning for tracked in session.objects.values()):
        raise ValueError(
            "the session has no prompted frame to track from; add prompts with "
            "EdgeTamVideoProcessor.add_inputs_to_inference_session and run the model on that frame first"
        )


# ---------------------------------------------------------------------------- removing prompts and objects


def clear_prompts_in_frame(
    model, session: EdgeTamVideoInferenceSession, frame_idx: int, obj_id: int, need_output: bool = True
) -> EdgeTamVideoSegmentationOutput | None:
    """Removes one object's prompts on one frame (original: `clear_all_prompts_in_frame`)."""
    session.check_frame_idx(frame_idx)
    session.clear_prompts(obj_id, frame_idx)
    objects = list(session.objects.values())
    if not any(other.has_prompt(frame_idx) for other in objects):
        _downgrade_frame(session, objects, frame_idx)
    if not need_output:
        return None
    is_conditioning = any(frame_idx in other.prompt_results.conditioning for other in objects)
    return prompted_frame_output(model, session, frame_idx, is_conditioning)


def _downgrade_frame(session: EdgeTamVideoInferenceSession, objects: list[TrackedObject], frame_idx: int) -> None:
    """A frame without prompts is no longer a conditioning frame: its results become ordinary
    tracked ones, to be recomputed by the next propagation."""
    session.consolidated_conditioning_frames.discard(frame_idx)
    session.consolidated_tracked_frames.discard(frame_idx)
    was_conditioning = False
    for tracked in objects:
        result = tracked.results.conditioning.pop(frame_idx, None)
        if result is not None:
            tracked.results.tracked[frame_idx] = result
            was_conditioning = True
    if was_conditioning:
        for tracked in objects:
            tracked.tracked_frames.pop(frame_idx, None)
    if not any(tracked.results.conditioning for tracked in objects):
        session.clear_tracking_results()


def remove_object(model, session: EdgeTamVideoInferenceSession, obj_id: int) -> list[EdgeTamVideoSegmentationOutput]:
    """Removes an object (original: `remove_object`); the other objects keep their results.
    Returns the results on the frames where the object had prompts."""
    tracked = session.get_object(obj_id)
    if len(session.objects) == 1:
        session.reset_tracking_data()
        return []
    prompted_frames = sorted(set(tracked.point_prompts) | set(tracked.mask_prompts))
    for frame_idx in prompted_frames:
        clear_prompts_in_frame(model, session, frame_idx, obj_id, need_output=False)
    session.remove_object_state(obj_id)
    outputs = []
    for frame_idx in prompted_frames:
        is_conditioning = any(frame_idx in other.prompt_results.conditioning for other in session.objects.values())
        outputs.append(prompted_frame_output(model, session, frame_idx, is_conditioning))
    return outputs


# ---------------------------------------------------------------------------- storage


def _store_result(model, session: EdgeTamVideoInferenceSession, prediction, row: int) -> FrameResult:
    """Row `row` of a prediction as a stored result, holes filled as the original post-processes."""
    mask_logits = fill_holes(prediction.mask_logits[row : row + 1], model.config.fill_hole_area)
    return FrameResult(
        mask_logits=mask_logits.to(session.inference_state_device),
        object_pointer=prediction.object_pointer[row : row + 1],
        object_score_logits=prediction.object_score_logits[row : row + 1],
    )


def _stored_memory(session: EdgeTamVideoInferenceSession, memory_tokens: torch.Tensor) -> torch.Tensor:
    return memory_tokens.to(session.memory_dtype).to(session.inference_state_device)


def _consolidated_frames(session: EdgeTamVideoInferenceSession, is_conditioning: bool) -> set[int]:
    return session.consolidated_conditioning_frames if is_conditioning else session.consolidated_tracked_frames


def _frame_output(session: EdgeTamVideoInferenceSession, frame_idx: int, results: list[FrameResult]):
    device = session.inference_device
    return EdgeTamVideoSegmentationOutput(
        object_ids=session.obj_ids,
        pred_masks=torch.cat([result.mask_logits.to(device) for result in results]),
        object_score_logits=torch.cat([result.object_score_logits.to(device) for result in results]),
        frame_idx=frame_idx,
    )
