"""Video cases: getting a frame from JPEG to model input, per-frame tracking of 1 and of 3 objects,
and the memory held after a short and after a long streamed video.

ours and transformers are driven through the same calls (transformers' `Sam2VideoModel` API,
which ours follows): `processor.init_video_session`, `add_inputs_to_inference_session`,
`model(inference_session=..., frame_idx=...)`, `model.propagate_in_video_iterator`; Meta's
original through its `SAM2VideoPredictor` (`init_state`, `add_new_points_or_box`,
`propagate_in_video`). Tracking advances the implementations one frame each in turn.
"""

import gc

import numpy as np

from .media import Clip, decode_frame, ping_pong_indices
from .memory import held_memory_mib, peak_memory_mib
from .models import ORIGINAL, Lineup
from .results import CaseResult, measure_calls
from .timing import describe_error, summarize, time_in_lockstep

# Tracked frames whose peak memory is measured, in a second short run per implementation.
PEAK_MEMORY_FRAMES = 3
_DECODE_ONLY = "JPEG decode"  # the decoding step alone, timed with the others and shown as a note


def run_frame_input(lineup: Lineup, clip: Clip, options) -> CaseResult:
    height, width = clip.size
    title = f"video frame: JPEG decode + preprocessing, {height}x{width}"
    result = CaseResult("video_frame_input", title, per="frame")
    path = clip.frame_paths[0]
    calls = {_DECODE_ONLY: lambda: decode_frame(path)}
    for name, processor in lineup.processors.items():
        # The streaming call of both APIs: one decoded frame -> `pixel_values` (1, 3, size, size).
        calls[name] = lambda processor=processor: processor(images=decode_frame(path), return_tensors="pt")
    measure_calls(result, calls, options)
    decode_only = summarize(result.samples.pop(_DECODE_ONLY, []))
    result.peak_memory_mib.pop(_DECODE_ONLY, None)
    if decode_only is not None:
        result.notes.append(f"of which JPEG decoding (PIL, the same for all): {decode_only.median * 1e3:.1f} ms")
    if ORIGINAL in lineup.models:
        result.notes.append(f"{ORIGINAL}: decodes and preprocesses the whole folder in init_state; not timed per frame")
    return result


def run_tracking(lineup: Lineup, clip: Clip, num_objects: int, options) -> CaseResult:
    height, width = clip.size
    name = f"video_tracking_{num_objects}"
    objects = f"{num_objects} object{'s' if num_objects > 1 else ''}"
    title = f"video tracking, {objects}, {height}x{width} clip of {len(clip.frame_paths)} frames"
    result = CaseResult(name, title, per="frame")
    frames = [decode_frame(path) for path in clip.frame_paths]
    streams = {}
    for implementation in lineup.names:
        try:
            streams[implementation] = _tracking_stream(implementation, lineup, frames, clip, num_objects, options)
        except Exception as error:  # noqa: BLE001 - a failing implementation is a result to report
            result.errors[implementation] = describe_error(error)
    # The first step re-yields the prompted frame's result; warm-up steps follow it.
    samples, errors = time_in_lockstep(streams, options.device, untimed_steps=1 + options.warmup)
    result.samples.update(samples)
    result.errors.update(errors)
    result.notes.append("one click per object on frame 0; the times are of the frames tracked after it")
    if ORIGINAL in result.errors and num_objects > 1:
        result.notes.append(f"{ORIGINAL}: its PerceiverResampler.forward_2d fails with several objects (EdgeTAM issue #15)")
    for implementation in samples:
        result.peak_memory_mib[implementation] = _tracking_peak_memory(
            implementation, lineup, frames, clip, num_objects, options
        )
    return result


def run_streaming_memory(lineup: Lineup, clip: Clip, options) -> CaseResult:
    short, long = options.video_frames, options.stream_frames
    result = CaseResult(
        "video_streaming_memory", f"memory held while streaming 1 object: after {short} and after {long} frames", per="frame"
    )
    frames = [decode_frame(path) for path in clip.frame_paths]
    for implementation in lineup.names:
        if implementation == ORIGINAL:
            result.notes.append(f"{ORIGINAL}: its video predictor reads a whole video up front; it cannot stream")
            continue
        try:
            result.held_memory_mib[implementation] = _streamed_memory(
                implementation, lineup, frames, clip, (short, long), options
            )
        except Exception as error:  # noqa: BLE001 - a failing implementation is a result to report
            result.errors[implementation] = describe_error(error)
    result.notes.append(
        f"frames are the clip played forward and backward; memory is what the process holds, "
        f"measured from just before the session starts (implementations run one after the other)"
    )
    return result


def _tracking_stream(implementation: str, lineup: Lineup, frames, clip: Clip, num_objects: int, options):
    """An iterator that tracks the prompted objects one frame per step (frame 0 first)."""
    clicks = clip.clicks[:num_objects]
    model = lineup.models[implementation]
    if implementation == ORIGINAL:
        state = model.init_state(video_path=str(clip.folder))
        for obj_id, (x, y) in enumerate(clicks, start=1):
            model.add_new_points_or_box(
                state,
                frame_idx=0,
                obj_id=obj_id,
                points=np.array([[x, y]], dtype=np.float32),
                labels=np.array([1], dtype=np.int32),
            )
        return iter(model.propagate_in_video(state))
    processor = lineup.processors[implementation]
    session = processor.init_video_session(video=frames, inference_device=options.device, dtype=options.dtype)
    processor.add_inputs_to_inference_session(
        inference_session=session,
        frame_idx=0,
        obj_ids=list(range(1, num_objects + 1)),
        input_points=[[[list(click)] for click in clicks]],
        input_labels=[[[1] for _ in clicks]],
    )
    model(inference_session=session, frame_idx=0)
    return iter(model.propagate_in_video_iterator(session))


def _tracking_peak_memory(implementation: str, lineup: Lineup, frames, clip: Clip, num_objects: int, options) -> float | None:
    """The largest per-frame peak over the first tracked frames of a fresh session (run alone)."""
    stream = _tracking_stream(implementation, lineup, frames, clip, num_objects, options)
    next(stream)  # the prompted frame, already computed
    peaks = [peak_memory_mib(lambda: next(stream), options.device) for _ in range(min(PEAK_MEMORY_FRAMES, len(frames) - 1))]
    peaks = [peak for peak in peaks if peak is not None]
    return max(peaks) if peaks else None


def _streamed_memory(implementation: str, lineup: Lineup, frames, clip: Clip, checkpoints, options) -> dict:
    """Streams frames one by one into a fresh session; the memory held at each checkpoint (MiB)."""
    model, processor = lineup.models[implementation], lineup.processors[implementation]
    gc.collect()
    start = held_memory_mib(options.device)
    session = processor.init_video_session(inference_device=options.device, dtype=options.dtype)
    held = {}
    for step, frame_index in enumerate(ping_pong_indices(len(frames), max(checkpoints))):
        pixel_values = processor(images=frames[frame_index], return_tensors="pt")["pixel_values"][0]
        if step == 0:
            processor.add_inputs_to_inference_session(
                inference_session=session,
                frame_idx=0,
                obj_ids=[1],
                input_points=[[[list(clip.clicks[0])]]],
                input_labels=[[[1]]],
                original_size=clip.size,
            )
        model(inference_session=session, frame=pixel_values.to(options.device))
        if step + 1 in checkpoints:
            now = held_memory_mib(options.device)
            held[f"after {step + 1} frames"] = None if now is None or start is None else now - start
    del session
    gc.collect()
    return held
