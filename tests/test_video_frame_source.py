"""Frames read on demand from a folder or a video file: a lazy session tracks as one holding the
whole video (forward, in reverse, prompted on any frame), keeps only a few frames, and names the
frame that cannot be read."""

import numpy as np
import pytest
from PIL import Image

from _tolerance import assert_same_logits
from _video_tiny import VIDEO_HEIGHT, VIDEO_WIDTH, decode_mp4, object_centre, video_frames, write_mp4
from _video_tiny import model, processor, single_thread  # noqa: F401  (fixtures)
from edgetam_hf.cli.media import has_av
from edgetam_hf.video.frame_source import open_frames

needs_av = pytest.mark.skipif(not has_av(), reason="PyAV (the video extra) is not installed")
NUM_CLIP_FRAMES = 12


def _clip() -> list[np.ndarray]:
    """The tiny clip played forth and back (0 1 2 3 4 3 2 1 0 ...)."""
    frames = video_frames()
    cycle = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    return [frames[cycle[t % len(cycle)]] for t in range(NUM_CLIP_FRAMES)]


def _track_both_ways(model, processor, session, prompted: int) -> list:
    processor.add_inputs_to_inference_session(
        session, prompted, [1, 2], input_points=[[[object_centre(1, 2)], [object_centre(2, 2)]]], input_labels=[[[1], [1]]]
    )
    outputs = [model(session, frame_idx=prompted)]
    outputs += model.propagate_in_video_iterator(session, reverse=True)
    outputs += model.propagate_in_video_iterator(session)
    return outputs


def _assert_same_tracking(lazy: list, eager: list) -> None:
    assert [o.frame_idx for o in lazy] == [o.frame_idx for o in eager]
    for a, b in zip(lazy, eager, strict=True):
        assert_same_logits(a.pred_masks, b.pred_masks)


def test_a_frame_folder_is_read_lazily_and_tracks_as_the_whole_video(model, processor, tmp_path):
    for index, frame in enumerate(_clip()):
        Image.fromarray(frame).save(tmp_path / f"{index}.png")
    lazy = processor.init_video_session(str(tmp_path), frame_cache_size=2)
    assert lazy.num_frames == NUM_CLIP_FRAMES and lazy.num_stored_frames == 0
    assert (lazy.video_height, lazy.video_width) == (VIDEO_HEIGHT, VIDEO_WIDTH)
    eager = processor.init_video_session(_clip())
    _assert_same_tracking(_track_both_ways(model, processor, lazy, 7), _track_both_ways(model, processor, eager, 7))
    assert lazy.num_stored_frames == 2


@needs_av
def test_an_mp4_is_decoded_lazily_with_seeks_and_tracks_as_the_whole_video(model, processor, tmp_path):
    path = tmp_path / "clip.mp4"
    write_mp4(path, _clip())
    decoded = decode_mp4(path)
    reader = open_frames(path)
    # out of order: seeks back to key frames, and decodes on
    for index in (9, 2, 3, 11, 0, 5, 4):
        assert np.array_equal(np.asarray(reader.read(index)), decoded[index]), index
    lazy = processor.init_video_session(str(path), frame_cache_size=3)
    eager = processor.init_video_session(decoded)
    _assert_same_tracking(_track_both_ways(model, processor, lazy, 8), _track_both_ways(model, processor, eager, 8))
    assert lazy.num_stored_frames == 3


def test_a_frame_of_another_size_is_named(model, processor, tmp_path):
    for index, frame in enumerate(_clip()[:4]):
        Image.fromarray(frame if index != 2 else frame[:, :-8]).save(tmp_path / f"{index:05d}.png")
    session = processor.init_video_session(str(tmp_path))
    processor.add_inputs_to_inference_session(session, 0, 1, input_points=[[[object_centre(1, 0)]]], input_labels=[[[1]]])
    model(session, frame_idx=0)
    with pytest.raises(ValueError, match=r"frame 2 \(00002\) is 120x96, the first frame 128x96"):
        list(model.propagate_in_video_iterator(session))


def test_an_unreadable_frame_is_named(processor, tmp_path):
    for index, frame in enumerate(_clip()[:3]):
        Image.fromarray(frame).save(tmp_path / f"{index:05d}.jpg")
    (tmp_path / "00001.jpg").write_bytes(b"not a jpeg")
    session = processor.init_video_session(str(tmp_path))
    with pytest.raises(ValueError, match=r"cannot read frame 1 \(.*00001.jpg\)"):
        session.get_frame(1)


@needs_av
def test_a_file_that_is_no_video_is_refused(processor, tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError, match="cannot open .*clip.mp4 as a video"):
        processor.init_video_session(str(path))

