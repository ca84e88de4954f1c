"""The places where code written for transformers' Sam2 / EdgeTam classes reads ours the same
way: positional access, `return_dict=False`, a call without prompts, `torch.export`, configs read
back from JSON, the video output's shapes, and the streaming recipe's processor arguments."""

import numpy as np
import pytest
import torch

from _image_tiny import TINY_IMAGE_SIZE, tiny_image_model
from _tolerance import assert_same_logits
from _video_tiny import VIDEO_HEIGHT, VIDEO_WIDTH, video_frames
from _video_tiny import model as video_model  # noqa: F401  (a fixture)
from _video_tiny import processor as video_processor  # noqa: F401  (a fixture)
from _video_tiny import single_thread  # noqa: F401  (an autouse fixture)
from edgetam_hf import EdgeTamConfig, EdgeTamPromptEncoderConfig, EdgeTamVideoConfig


@pytest.fixture(scope="module")
def image_model():
    return tiny_image_model()


def _pixels(batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, generator=torch.Generator().manual_seed(0))


def _click() -> dict:
    return {"input_points": torch.tensor([[[[40.0, 50.0]]]]), "input_labels": torch.tensor([[[1]]])}


@torch.no_grad()
def test_positional_access_and_return_dict_false_give_transformers_order(image_model):
    outputs = image_model(pixel_values=_pixels(), **_click())
    as_tuple = image_model(pixel_values=_pixels(), return_dict=False, **_click())
    assert isinstance(as_tuple, tuple)
    # transformers' Sam2ImageSegmentationOutput: iou_scores, pred_masks, object_score_logits, image_embeddings
    expected = (outputs.iou_scores, outputs.pred_masks, outputs.object_score_logits)
    for found in (outputs.to_tuple()[:3], as_tuple[:3], (outputs[0], outputs[1], outputs[2])):
        for tensor, reference in zip(found, expected, strict=True):
            assert torch.equal(tensor, reference)


@torch.no_grad()
def test_no_prompt_is_one_padding_point_per_image(image_model):
    pixels = _pixels(batch=2)
    unprompted = image_model(pixel_values=pixels)
    padding = {"input_points": torch.zeros(2, 1, 1, 2), "input_labels": torch.full((2, 1, 1), -1)}
    explicit = image_model(pixel_values=pixels, **padding)
    assert unprompted.iou_scores.shape == (2, 1, 3)
    assert torch.equal(unprompted.pred_masks, explicit.pred_masks)


def test_torch_export_gives_the_eager_masks(image_model):
    pixels = _pixels()
    with torch.no_grad():
        eager = image_model(pixel_values=pixels, **_click())
    exported = torch.export.export(image_model, (pixels,), _click())
    with torch.no_grad():
        found = exported.module()(pixels, **_click())
    assert_same_logits(found["pred_masks"], eager.pred_masks)
    assert_same_logits(found["iou_scores"], eager.iou_scores)
    # The value checks that export leaves out still run in eager mode.
    with pytest.raises(ValueError, match="pixel_values holds NaN"):
        image_model(pixel_values=torch.full_like(_pixels(), float("nan")), **_click())


def test_prompt_encoder_scale_may_be_an_int_as_transformers_types_it():
    assert EdgeTamPromptEncoderConfig(scale=1).scale == 1.0


@pytest.mark.parametrize("config_class", [EdgeTamConfig, EdgeTamVideoConfig])
def test_config_json_file_round_trip(config_class, tmp_path):
    config = config_class()
    config.to_json_file(tmp_path / "config.json")
    assert config_class.from_json_file(tmp_path / "config.json").to_dict() == config.to_dict()


@torch.no_grad()
def test_streaming_recipe_and_video_output_shapes(video_model, video_processor):  # noqa: F811
    """transformers' streaming recipe, with its argument types: a tensor `original_size`, `device=`."""
    session = video_processor.init_video_session(inference_device="cpu")
    for frame_idx, frame in enumerate(video_frames()[:2]):
        inputs = video_processor(images=frame, device="cpu", return_tensors="pt")
        if frame_idx == 0:
            video_processor.add_inputs_to_inference_session(
                session, frame_idx=0, obj_ids=[1, 2], input_points=[[[[30, 30]], [[90, 35]]]],
                input_labels=[[[1], [1]]], original_size=inputs.original_sizes[0],
            )
        output = video_model(inference_session=session, frame=inputs.pixel_values[0])
        assert output.object_score_logits.shape == (2, 1)
        assert output.pred_masks.shape[:2] == (2, 1)
    # transformers' session holds the frame size as the processor's 0-d tensors
    for side, expected in ((session.video_height, VIDEO_HEIGHT), (session.video_width, VIDEO_WIDTH)):
        assert isinstance(side, torch.Tensor) and side.ndim == 0 and int(side) == expected
    sizes = [[session.video_height, session.video_width]]  # as transformers' docs pass them
    masks = video_processor.post_process_masks([output.pred_masks], original_sizes=sizes, binarize=False)[0]
    assert masks.shape == (2, 1, VIDEO_HEIGHT, VIDEO_WIDTH)


def test_whole_video_session_has_tensor_frame_size(video_processor):  # noqa: F811
    session = video_processor.init_video_session(video=np.stack(video_frames()[:2]))
    assert (session.video_height.ndim, int(session.video_height), int(session.video_width)) == (0, VIDEO_HEIGHT, VIDEO_WIDTH)


@torch.no_grad()
def test_prompt_embeddings_are_what_forward_decodes(image_model):
    sparse, dense = image_model.get_prompt_embeddings(**_click())
    assert sparse.shape == (1, 1, 2, 32) and dense.shape[:2] == (1, 32)  # the click and the padding point


@pytest.mark.parametrize("name", ["attention_similarity", "target_embedding"])
def test_persam_inputs_are_refused_by_name(image_model, name):
    with pytest.raises(ValueError, match=name):
        image_model(pixel_values=_pixels(), **{name: torch.zeros(1, 1, 32)})
