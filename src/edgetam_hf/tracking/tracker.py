"""The tracker's calls, once for every backend: prompts, propagation forward and backward,
removing an object, clearing a frame's prompts. The one loop over frames is `propagate`.

The semantics are those of the original `SAM2VideoPredictor` (sam2/sam2_video_predictor.py):
  * A prompt on a frame that an object has not been run on yet makes it an initial conditioning
    frame: segmented without memory. On a frame already tracked it is a correction: segmented
    with the memory and the object's previous logits (clamped to +-32) as a mask prompt. A mask
    prompt is the result itself, on any frame (`_use_mask_as_output`).
  * Prompt results are merged ("consolidated") before tracking: every object gets a result on
    every prompted frame, its own or, without one, a placeholder (mask logits -1024, object
    score 10, the pointer of an empty mask), and the memory of every object on that frame is
    encoded from the binarised masks. So a conditioning frame conditions all objects, and a
    corrected frame keeps its correction.
  * Tracking reuses the consolidated results of prompted frames as they are, and runs every
    other frame from the memories `rules.memory_plan` selects, objects with equal plans in one batch.
Objects may also join after tracking started (the original refuses): the conditioning frames
they were not prompted on give them placeholders too, as if they had been there.

A bounded tracker (`TrackingBackend.keep_behind`) forgets the tracked results no later frame
reads, and refuses with a ValueError to compute anything from a result it forgot.
"""

from collections.abc import Hashable, Iterator
from typing import Any, Protocol

from ..tracking_order import frames_to_track
from .records import FrameResult, PendingPrompt, PointPrompt, Tensor, TrackedObject
from .rules import MemoryPlan, TrackingRules, memory_plan
from .state import TrackerState

Output = Any  # a backend's output of one frame (`EdgeTamVideoSegmentationOutput`, `OnnxVideoFrame`)


class TrackingBackend(Protocol):
    """The tensor work of a tracker. `stored` rows hold, per object, the results a `MemoryPlan`
    names, in the order of `plan.entries`; results the backend makes have their holes filled."""

    rules: TrackingRules
    num_frames: int
    revision: Hashable  # the weights and settings results depend on: a result is reused only under the same
    keep_behind: int | None  # tracked frames kept behind the newest one; None: every result is kept

    def check_frame_idx(self, frame_idx, name: str = "frame_idx") -> None: ...
    def frame_features(self, frame_idx: int) -> Any: ...
    def predict_from_mask(self, features, mask: Tensor) -> FrameResult: ...
    def predict_from_points(
        self, features, plan: MemoryPlan | None, stored: list[FrameResult], points: PointPrompt,
        previous: FrameResult | None, multimask: bool,
    ) -> FrameResult: ...
    def track(self, features, plan: MemoryPlan, stored: list[list[FrameResult]], multimask: bool) -> list[FrameResult]: ...
    def encode_prompted_memories(self, features, results: list[FrameResult]) -> list[Tensor]: ...
    def placeholder(self) -> FrameResult: ...
    def frame_output(self, frame_idx: int, obj_ids: list[int], results: list[FrameResult]) -> Output: ...
    def frames_forgotten(self, frame_idx: int, frames: set[int]) -> None: ...


def run_frame(backend: TrackingBackend, state: TrackerState, frame_idx: int, reverse: bool = False) -> Output:
    """The frame's prompt results if prompts are waiting for it, else one tracking step on it."""
    backend.check_frame_idx(frame_idx)
    waiting = state.has_pending_prompt(frame_idx)
    kinds = run_pending_prompts(backend, state)
    if waiting:
        return prompted_frame_output(backend, state, frame_idx, kinds[frame_idx])
    prepare_tracking(backend, state)
    return track_frame(backend, state, frame_idx, reverse)


def propagate(
    backend: TrackingBackend,
    state: TrackerState,
    start_frame_idx: int | None = None,
    max_frame_num_to_track: int | None = None,
    reverse: bool = False,
) -> Iterator[Output]:
    """Tracks all objects frame by frame (original: `propagate_in_video`)."""
    run_pending_prompts(backend, state)
    prepare_tracking(backend, state)
    require_prompts(state)
    if start_frame_idx is None:
        start_frame_idx = min(t for tracked in state.objects.values() for t in tracked.results.conditioning)
    backend.check_frame_idx(start_frame_idx, name="start_frame_idx")
    for frame_idx in frames_to_track(start_frame_idx, max_frame_num_to_track, reverse, backend.num_frames):
        yield track_frame(backend, state, frame_idx, reverse)


def require_prompts(state: TrackerState) -> None:
    if not any(tracked.results.conditioning for tracked in state.objects.values()):
        raise ValueError(
            "there is no prompted frame to track from: add prompts and run them on their frame first "
            "(EdgeTamVideoProcessor.add_inputs_to_inference_session, OnnxVideoTracker.add_prompt)"
        )


# ---------------------------------------------------------------------------- prompts


def run_pending_prompts(backend: TrackingBackend, state: TrackerState) -> dict[int, bool]:
    """Runs the queued prompts, in order, except those for a streamed frame that has not arrived
    yet; returns, per frame, whether its last prompt made it a conditioning frame."""
    kinds = {}
    for prompt in state.take_runnable_prompts(backend.num_frames):
        kinds[prompt.frame_idx] = _run_prompt(backend, state, prompt)
    return kinds


def _run_prompt(backend: TrackingBackend, state: TrackerState, prompt: PendingPrompt) -> bool:
    """One object's prompt on one frame (original: `add_new_points_or_box` / `add_new_mask` after
    the bookkeeping of inputs). The result waits in `prompt_results`, without memory."""
    tracked = state.get_object(prompt.obj_id)
    frame_idx = prompt.frame_idx
    is_conditioning = frame_idx not in tracked.tracked_frames
    features = backend.frame_features(frame_idx)
    if prompt.mask is not None:
        result = backend.predict_from_mask(features, prompt.mask)
    else:
        plan, stored = None, []
        if not is_conditioning:
            reverse = tracked.tracked_frames[frame_idx]
            state.check_memories_kept(backend.rules.frames_read(frame_idx, reverse, backend.num_frames), frame_idx)
            plan = memory_plan(backend.rules, tracked.results, frame_idx, reverse, backend.num_frames)
            stored = _stored_results(tracked, plan)
        previous = tracked.latest(frame_idx, is_conditioning)
        multimask = backend.rules.use_multimask(is_conditioning, prompt.points.num_points)
        result = backend.predict_from_points(features, plan, stored, prompt.points, previous, multimask)
    tracked.prompt_results.of_kind(is_conditioning)[frame_idx] = result
    return is_conditioning


def prompted_frame_output(backend: TrackingBackend, state: TrackerState, frame_idx: int, is_conditioning: bool) -> Output:
    """Every object's latest result on a prompted frame, placeholders for objects without one
    (original: the consolidation an `add_*` call returns, before any memory is encoded)."""
    results = [tracked.latest(frame_idx, is_conditioning) for tracked in state.objects.values()]
    results = [result if result is not None else backend.placeholder() for result in results]
    return backend.frame_output(frame_idx, state.obj_ids, results)


def _stored_results(tracked: TrackedObject, plan: MemoryPlan) -> list[FrameResult]:
    return [tracked.results.of_kind(entry.is_conditioning)[entry.frame_idx] for entry in plan.entries]


# ---------------------------------------------------------------------------- consolidation


def prepare_tracking(backend: TrackingBackend, state: TrackerState) -> None:
    """Merges the prompt results into the stored results (original: `propagate_in_video_preflight`)."""
    state.tracking_started = True
    objects = list(state.objects.values())
    for is_conditioning in (False, True):
        # The original walks a set of frame indices; so do we, for the same order of the
        # conditioning frames, which is the order of their memories.
        frames = set()
        for tracked in objects:
            frames.update(tracked.prompt_results.of_kind(is_conditioning).keys())
        consolidated = state.consolidated_conditioning_frames if is_conditioning else state.consolidated_tracked_frames
        consolidated.update(frames)
        for frame_idx in frames:
            _consolidate(backend, frame_idx, is_conditioning, objects)
        for tracked in objects:
            tracked.prompt_results.of_kind(is_conditioning).clear()
    # Objects that joined after a conditioning frame was consolidated get their placeholder
    # there now. (On a consolidated correction frame they are simply tracked.)
    for frame_idx in sorted(state.consolidated_conditioning_frames):
        missing = [tracked for tracked in objects if tracked.results.find(frame_idx) is None]
        if missing:
            _consolidate(backend, frame_idx, True, missing)
    # A frame that became a conditioning frame keeps no tracked result.
    for tracked in objects:
        for frame_idx in tracked.results.conditioning:
            tracked.results.tracked.pop(frame_idx, None)
    state.consolidated_tracked_frames -= state.consolidated_conditioning_frames


def _consolidate(backend: TrackingBackend, frame_idx: int, is_conditioning: bool, objects: list[TrackedObject]) -> None:
    """Gives each of `objects` its latest result on the frame (or a placeholder) with a memory
    encoded from the binarised mask, in one batch (original: `_consolidate_temp_output_across_obj`
    with `run_mem_encoder=True`)."""
    results = [tracked.latest(frame_idx, is_conditioning) for tracked in objects]
    results = [result if result is not None else backend.placeholder() for result in results]
    memories = backend.encode_prompted_memories(backend.frame_features(frame_idx), results)
    for tracked, result, memory_tokens in zip(objects, results, memories, strict=True):
        tracked.results.of_kind(is_conditioning)[frame_idx] = FrameResult(
            result.mask_logits, result.object_pointer, result.object_score_logits, memory_tokens
        )


# ---------------------------------------------------------------------------- tracking


def track_frame(backend: TrackingBackend, state: TrackerState, frame_idx: int, reverse: bool) -> Output:
    """One step of propagation: reuse the frame's consolidated results, else run it on memory."""
    require_prompts(state)
    objects = list(state.objects.values())
    if frame_idx in state.consolidated_conditioning_frames:
        results = [tracked.results.conditioning.get(frame_idx) for tracked in objects]
    elif frame_idx in state.consolidated_tracked_frames:
        results = [tracked.results.tracked.get(frame_idx) for tracked in objects]
    else:
        results = [None] * len(objects)
    to_run = [tracked for tracked, result in zip(objects, results, strict=True) if result is None]
    if to_run:
        state.check_memories_kept(backend.rules.frames_read(frame_idx, reverse, backend.num_frames), frame_idx)
    groups: dict[MemoryPlan, list[TrackedObject]] = {}
    for tracked in to_run:
        plan = memory_plan(backend.rules, tracked.results, frame_idx, reverse, backend.num_frames)
        groups.setdefault(plan, []).append(tracked)
    for plan, group in groups.items():
        _track_objects(backend, state, plan, group, frame_idx)
    for tracked in objects:
        tracked.tracked_frames[frame_idx] = reverse
    output = backend.frame_output(frame_idx, state.obj_ids, [tracked.results.find(frame_idx) for tracked in objects])
    if backend.keep_behind is not None:
        forgotten = state.forget_frames_behind(frame_idx, reverse, backend.keep_behind, backend.rules.memory_window)
        backend.frames_forgotten(frame_idx, forgotten)
    return output


def _track_objects(backend: TrackingBackend, state: TrackerState, plan: MemoryPlan, objects: list[TrackedObject], frame_idx: int) -> None:
    """Tracks a batch of objects on a frame and stores their results with a new memory
    (original: `_run_single_frame_inference` with `run_mem_encoder=True`).

    The original recomputes a frame on every propagation over it; when nothing the computation
    reads has changed since the stored results were made (e.g. the frames before a correction),
    recomputing gives them again, so they are kept.
    """
    stored = [_stored_results(tracked, plan) for tracked in objects]
    # What a tracked result depends on: the frame, the batch, the results it reads (by serial
    # number), the video's length and the backend's weights and settings.
    key = (
        frame_idx,
        plan,
        tuple(result.serial for row in stored for result in row),
        tuple(tracked.obj_id for tracked in objects),
        backend.num_frames,
        backend.revision,
    )
    previous = [tracked.results.tracked.get(frame_idx) for tracked in objects]
    if all(result is not None and result.computed_from == key for result in previous):
        return
    results = backend.track(backend.frame_features(frame_idx), plan, stored, backend.rules.use_multimask(False, 0))
    state.forgotten_frames.discard(frame_idx)  # a frame tracked again holds results again
    for tracked, result in zip(objects, results, strict=True):
        result.computed_from = key
        tracked.results.tracked[frame_idx] = result


# ---------------------------------------------------------------------------- removing prompts and objects


def clear_prompts_in_frame(
    backend: TrackingBackend, state: TrackerState, frame_idx: int, obj_id: int, need_output: bool = True
) -> Output | None:
    """Removes one object's prompts on one frame (original: `clear_all_prompts_in_frame`): a frame
    left without prompts is no longer a conditioning frame (its results are recomputed by the
    next propagation), and with no conditioning frame left every result is forgotten."""
    backend.check_frame_idx(frame_idx)
    state.clear_prompts(obj_id, frame_idx)
    objects = list(state.objects.values())
    if not any(other.has_prompt(frame_idx) for other in objects):
        _downgrade_frame(state, frame_idx)
    if not need_output:
        return None
    return prompted_frame_output(backend, state, frame_idx, _has_conditioning_prompt(state, frame_idx))


def _has_conditioning_prompt(state: TrackerState, frame_idx: int) -> bool:
    return any(frame_idx in tracked.prompt_results.conditioning for tracked in state.objects.values())


def _downgrade_frame(state: TrackerState, frame_idx: int) -> None:
    """A frame without prompts is no longer a conditioning frame: its results become ordinary
    tracked ones, to be recomputed by the next propagation."""
    state.consolidated_conditioning_frames.discard(frame_idx)
    state.consolidated_tracked_frames.discard(frame_idx)
    was_conditioning = False
    for tracked in state.objects.values():
        result = tracked.results.conditioning.pop(frame_idx, None)
        if result is not None:
            tracked.results.tracked[frame_idx] = result
            was_conditioning = True
    if was_conditioning:
        for tracked in state.objects.values():
            tracked.tracked_frames.pop(frame_idx, None)
    if not any(tracked.results.conditioning for tracked in state.objects.values()):
        state.clear_tracking_results()


def remove_object(backend: TrackingBackend, state: TrackerState, obj_id: int) -> list[Output]:
    """Removes an object (original: `remove_object`); the other objects keep their results.
    Returns every object's results on the frames where it had prompts (none if it was the only one)."""
    tracked = state.get_object(obj_id)
    if len(state.objects) == 1:
        state.reset_tracking_data()
        return []
    prompted_frames = tracked.prompted_frames
    for frame_idx in prompted_frames:
        clear_prompts_in_frame(backend, state, frame_idx, obj_id, need_output=False)
    state.remove_object_state(obj_id)
    return [prompted_frame_output(backend, state, t, _has_conditioning_prompt(state, t)) for t in prompted_frames]
