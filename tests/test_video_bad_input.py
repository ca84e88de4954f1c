"""Bad input to the video processor and model: each a ValueError that names the argument."""

import numpy as np
import pytest

from _video_tiny import VIDEO_HEIGHT, VIDEO_WIDTH, video_frames
from _video_tiny import model, processor, single_thread  # noqa: F401  (fixtures)

POINT = [[[[20.0, 30.0]]]]
LABEL = [[[1]]]


@pytest.fixture
def session(processor):
    return processor.init_video_session(video_frames())


@pytest.mark.parametrize("frame_idx", [-1, 5, 100])
def test_frame_index_outside_the_video(processor, model, session, frame_idx):
    with pytest.raises(ValueError, match="frame_idx"):
        processor.add_inputs_to_inference_session(session, frame_idx, 1, input_points=POINT, input_labels=LABEL)
    with pytest.raises(ValueError, match="frame_idx"):
        model(session, frame_idx=frame_idx)
    processor.add_inputs_to_inference_session(session, 0, 1, input_points=POINT, input_labels=LABEL)
    with pytest.raises(ValueError, match="start_frame_idx"):
        next(model.propagate_in_video_iterator(session, start_frame_idx=frame_idx))


def test_unknown_object_id(processor, model, session):
    processor.add_inputs_to_inference_session(session, 0, 1, input_points=POINT, input_labels=LABEL)
    model(session, frame_idx=0)
    with pytest.raises(ValueError, match="obj_id"):
        model.remove_object(session, 2)
    with pytest.raises(ValueError, match="obj_id"):
        model.clear_prompts_in_frame(session, 0, 2)


@pytest.mark.parametrize("shape", [(VIDEO_HEIGHT, VIDEO_WIDTH + 1), (64, 64), (2, VIDEO_HEIGHT, VIDEO_WIDTH)])
def test_mask_prompt_of_the_wrong_size(processor, session, shape):
    with pytest.raises(ValueError, match="input_masks"):
        processor.add_inputs_to_inference_session(session, 0, 1, input_masks=[np.ones(shape, dtype=bool)])


def test_prompts_for_a_streamed_frame_that_has_not_arrived(processor, model):
    streaming = processor.init_video_session()
    size = (VIDEO_HEIGHT, VIDEO_WIDTH)
    with pytest.raises(ValueError, match="original_size"):
        processor.add_inputs_to_inference_session(streaming, 0, 1, input_points=POINT, input_labels=LABEL)
    with pytest.raises(ValueError, match="frame_idx"):
        processor.add_inputs_to_inference_session(
            streaming, 1, 1, input_points=POINT, input_labels=LABEL, original_size=size
        )
    # the next frame may be prompted before it arrives, as in transformers' streaming example
    processor.add_inputs_to_inference_session(streaming, 0, 1, input_points=POINT, input_labels=LABEL, original_size=size)
    with pytest.raises(ValueError, match="frame_idx"):
        model(streaming, frame_idx=0)
    model(streaming, frame=processor(images=video_frames()[0])["pixel_values"])
    with pytest.raises(ValueError, match="frame_idx"):
        processor.add_inputs_to_inference_session(streaming, 2, 1, input_points=POINT, input_labels=LABEL)
    with pytest.raises(ValueError, match="frame_idx"):
        model(streaming, frame_idx=1)


def test_masks_and_points_for_one_object_on_one_frame(processor, session):
    mask = np.ones((VIDEO_HEIGHT, VIDEO_WIDTH), dtype=bool)
    with pytest.raises(ValueError, match="input_masks"):
        processor.add_inputs_to_inference_session(session, 0, 1, input_points=POINT, input_labels=LABEL, input_masks=[mask])
    processor.add_inputs_to_inference_session(session, 0, 1, input_masks=[mask])
    with pytest.raises(ValueError, match="input_points"):
        processor.add_inputs_to_inference_session(
            session, 0, 1, input_points=POINT, input_labels=LABEL, clear_old_inputs=False
        )
    processor.add_inputs_to_inference_session(session, 1, 2, input_points=POINT, input_labels=LABEL)
    with pytest.raises(ValueError, match="input_masks"):
        processor.add_inputs_to_inference_session(session, 1, 2, input_masks=[mask], clear_old_inputs=False)
    # replacing one kind by the other is fine
    processor.add_inputs_to_inference_session(session, 0, 1, input_points=POINT, input_labels=LABEL)
    assert 0 not in session.objects[1].mask_prompts


def test_prompts_and_object_ids_must_agree(processor, session):
    with pytest.raises(ValueError, match="obj_ids"):
        processor.add_inputs_to_inference_session(session, 0, [1, 2], input_points=POINT, input_labels=LABEL)
    with pytest.raises(ValueError, match="obj_ids"):
        processor.add_inputs_to_inference_session(session, 0, [1, 1], input_points=POINT, input_labels=LABEL)
    with pytest.raises(ValueError, match="input_masks"):
        processor.add_inputs_to_inference_session(session, 0, [1, 2], input_masks=[np.ones((VIDEO_HEIGHT, VIDEO_WIDTH))])
    assert session.obj_ids == []  # nothing was added by a rejected call


def test_tracking_without_any_prompt(model, session):
    with pytest.raises(ValueError, match="prompt"):
        model(session, frame_idx=0)
