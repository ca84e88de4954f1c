"""Bounded sessions: what they keep stays bounded however many frames pass, and their outputs are
those of a keep-everything session; what they forgot is refused with a ValueError saying why."""

import pytest

from _tolerance import assert_same_logits
from _video_tiny import VIDEO_HEIGHT, VIDEO_WIDTH, long_clip, object_centre
from _video_tiny import model, processor, single_thread  # noqa: F401  (fixtures)
from edgetam_hf.tracking.rules import TrackingRules

NUM_STREAMED = 40


def _stream(model, processor, bounded: bool):
    """Streams the long clip with objects 1 and 3 clicked on frame 0; yields (session, output)."""
    session = processor.init_video_session(bounded=bounded)
    processor.add_inputs_to_inference_session(
        session, 0, [1, 3], input_points=[[[object_centre(1, 0)], [object_centre(3, 0)]]],
        input_labels=[[[1], [1]]], original_size=(VIDEO_HEIGHT, VIDEO_WIDTH),
    )
    for frame in long_clip(NUM_STREAMED):
        yield session, model(session, frame=processor(images=frame)["pixel_values"])


def _stored_counts(session) -> tuple[int, int, int]:
    """(frames kept, tracked results kept, memories kept) over all objects."""
    results = [r for tracked in session.objects.values() for r in tracked.results.tracked.values()]
    memories = [r for r in results if r.memory_tokens is not None]
    return session.num_stored_frames, len(results), len(memories)


def test_streaming_keeps_a_bounded_number_of_frames_and_memories(model, processor):
    window = TrackingRules.read(model.config).memory_window
    counts = []
    for session, output in _stream(model, processor, bounded=True):
        counts.append(_stored_counts(session))
    assert session.num_frames == NUM_STREAMED
    # pixels: the conditioning frame and the newest; results per object: the newest frame, the
    # window behind it and the window after the conditioning frame
    assert max(c[0] for c in counts) <= 2
    assert max(c[1] for c in counts) == max(c[2] for c in counts) == 2 * (2 * window + 1)
    assert counts[-1] == counts[2 * window + 5] == max(counts)  # reached early, then flat
    assert session.forgotten_frames.num_ranges == 1 and len(session.forgotten_frames) == NUM_STREAMED - 2 - 2 * window


def test_bounded_stream_equals_keep_everything(model, processor):
    kept = [output for _, output in _stream(model, processor, bounded=False)]
    bounded = [output for _, output in _stream(model, processor, bounded=True)]
    for everything, forgetting in zip(kept, bounded, strict=True):
        assert forgetting.frame_idx == everything.frame_idx
        assert_same_logits(forgetting.pred_masks, everything.pred_masks)
        assert_same_logits(forgetting.object_score_logits, everything.object_score_logits)


def test_offline_bounded_session_both_ways_from_a_middle_frame(model, processor):
    """Prompted in the middle, tracked forward then backward, then forward again."""
    frames, middle = long_clip(24), 12
    outputs = {}
    for bounded in (False, True):
        session = processor.init_video_session(frames, bounded=bounded)
        processor.add_inputs_to_inference_session(
            session, middle, 1, input_points=[[[object_centre(1, 2)]]], input_labels=[[[1]]]
        )
        model(session, frame_idx=middle)
        forward = list(model.propagate_in_video_iterator(session))
        backward = list(model.propagate_in_video_iterator(session, reverse=True))
        again = list(model.propagate_in_video_iterator(session))
        outputs[bounded] = forward + backward + again
        if bounded:
            assert len(session.objects[1].results.tracked) < len(frames) - 1
    for everything, forgetting in zip(outputs[False], outputs[True], strict=True):
        assert forgetting.frame_idx == everything.frame_idx
        assert_same_logits(forgetting.pred_masks, everything.pred_masks)


def test_a_forgotten_frame_cannot_be_corrected_or_tracked_from(model, processor):
    session = processor.init_video_session(long_clip(20), bounded=True)
    processor.add_inputs_to_inference_session(session, 0, 1, input_points=[[[object_centre(1, 0)]]], input_labels=[[[1]]])
    model(session, frame_idx=0)
    list(model.propagate_in_video_iterator(session))
    forgotten = 10
    assert forgotten in session.forgotten_frames
    with pytest.raises(ValueError, match=r"frame_idx=10: this bounded session has forgotten .* bounded=False"):
        processor.add_inputs_to_inference_session(
            session, forgotten, 1, input_points=[[[object_centre(1, 0)]]], input_labels=[[[1]]]
        )
    with pytest.raises(ValueError, match="would read the memory of frame 10, which this bounded session has forgotten"):
        model(session, frame_idx=forgotten + 1)
    # a frame still kept can be corrected
    last = session.num_frames - 1
    processor.add_inputs_to_inference_session(session, last, 1, input_points=[[[object_centre(1, 0)]]], input_labels=[[[1]]])
    assert model(session, frame_idx=last).frame_idx == last


def test_a_stream_keeps_no_pixels_of_old_frames(model, processor):
    for session, output in _stream(model, processor, bounded=True):
        if output.frame_idx == 12:
            break
    with pytest.raises(ValueError, match="no longer keeps that frame"):
        session.get_frame(5)
    assert session.get_frame(0).shape[0] == 1  # the conditioning frame is kept
