"""The exact speed-ups of eager inference: activations overwritten in place, the FPN's lateral convs
composed with the mask decoder's projections, the depthwise 1x1 conv as a channel scale. Each is
compared with the plain computation it replaces."""

import contextlib

import pytest
import torch
from torch import nn

from _image_tiny import tiny_config, tiny_image_model
from _tolerance import assert_same_float32, assert_same_logits
from _video_tiny import object_centre, tiny_model, tiny_processor, video_frames
from _video_tiny import single_thread  # noqa: F401  (fixture)
from edgetam_hf import EdgeTamModel, layers, mask_decoder, memory_attention, memory_encoder, repvit
from edgetam_hf.layers import compose_pointwise_convs, overwrites_activations, pointwise_conv
from edgetam_hf.repvit import RepVitConvNorm


@contextlib.contextmanager
def out_of_place(monkeypatch):
    """Every module computing out of place, as with gradients on (but without autograd)."""
    with monkeypatch.context() as patch:
        for module in (layers, mask_decoder, memory_attention, memory_encoder, repvit):
            patch.setattr(module, "overwrites_activations", lambda _module: False)
        yield


def _track_two_objects(model) -> list:
    processor = tiny_processor()
    session = processor.init_video_session(video_frames())
    points = [[[object_centre(1, 0)], [object_centre(3, 0)]]]
    processor.add_inputs_to_inference_session(session, 0, [1, 3], input_points=points, input_labels=[[[1], [1]]])
    model(session, frame_idx=0)
    return list(model.propagate_in_video_iterator(session))


def test_tracking_with_activations_overwritten_equals_tracking_out_of_place(monkeypatch):
    model = tiny_model()
    with torch.no_grad():
        in_place = _track_two_objects(model)
        with out_of_place(monkeypatch):
            expected = _track_two_objects(model)
    assert len(in_place) == len(expected) > 1
    for output, reference in zip(in_place, expected, strict=True):
        assert_same_logits(output.pred_masks, reference.pred_masks, msg=f"frame {output.frame_idx}")
        assert_same_logits(output.object_score_logits, reference.object_score_logits)


def test_image_model_with_activations_overwritten_equals_out_of_place(monkeypatch):
    model = tiny_image_model()
    pixel_values = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    points, labels = torch.tensor([[[[60.0, 90.0]]], [[[200.0, 40.0]]]]), torch.ones(2, 1, 1, dtype=torch.long)
    with torch.no_grad():
        in_place = model(pixel_values=pixel_values, input_points=points, input_labels=labels)
        with out_of_place(monkeypatch):
            expected = model(pixel_values=pixel_values, input_points=points, input_labels=labels)
    assert_same_logits(in_place.pred_masks, expected.pred_masks)
    assert_same_logits(in_place.iou_scores, expected.iou_scores)


def test_activations_are_overwritten_only_in_eager_inference():
    module = nn.Linear(2, 2).eval()
    with torch.no_grad():
        assert overwrites_activations(module)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not overwrites_activations(module)  # autocast picks each op's dtype
    assert not overwrites_activations(module)  # autograd may need the activations
    with torch.no_grad():
        assert not overwrites_activations(module.train())


def test_bfloat16_autocast_runs_out_of_place_in_the_dtypes_autocast_picks():
    model = tiny_image_model()
    pixel_values = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.get_image_embeddings(pixel_values)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            embeddings = model.get_image_embeddings(pixel_values)
    for actual, reference in zip(embeddings, expected, strict=True):
        assert torch.isfinite(actual).all()
        largest = reference.abs().max()
        # bfloat16 keeps 8 significant bits: a few dozen roundings of 2**-8 of the largest value.
        torch.testing.assert_close(actual.float(), reference, rtol=0, atol=float(largest) * 0.1)


def _separate_projections(model, pixel_values):
    """The frame features through the FPN's full maps, then the decoder's projections."""
    fpn_features, fpn_positions = model.vision_encoder(pixel_values)
    return model.mask_decoder.project_high_resolution_features(fpn_features[:2]), fpn_features[-1], fpn_positions[-1]


@pytest.mark.parametrize("grad", [False, True])
def test_composed_projections_equal_the_fpn_maps_then_the_projections(grad):
    model = tiny_image_model()
    pixel_values = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.set_grad_enabled(grad):
        features = model._frame_features(pixel_values)
        high_resolution, vision_features, vision_position = _separate_projections(model, pixel_values)
    assert model._high_resolution_projections() is not None
    for actual, expected in zip(features.high_resolution_features, high_resolution, strict=True):
        assert actual.shape == expected.shape
        assert_same_float32(actual, expected)
    assert_same_float32(features.vision_features, vision_features)
    assert_same_float32(features.vision_position, vision_position)
    if grad:  # the composed convs pass gradients to both convs' weights (training)
        features.high_resolution_features[0].sum().backward()
        assert model.vision_encoder.neck.lateral_conv(0).weight.grad.abs().sum() > 0
        assert model.mask_decoder.conv_s0.weight.grad.abs().sum() > 0


def test_a_level_with_a_top_down_path_keeps_the_fpn_map():
    config = tiny_config()
    config.vision_config.fpn_top_down_levels = [1, 2, 3]
    model = EdgeTamModel(config).eval()
    assert model._high_resolution_projections() is None
    pixel_values = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        features = model._frame_features(pixel_values)
        high_resolution, _, _ = _separate_projections(model, pixel_values)
    for actual, expected in zip(features.high_resolution_features, high_resolution, strict=True):
        assert_same_float32(actual, expected)


def test_compose_pointwise_convs():
    generator = torch.Generator().manual_seed(4)
    maps = torch.randn(2, 6, 5, 7, generator=generator)
    for first_bias, second_bias in [(True, True), (False, True), (True, False)]:
        first, second = nn.Conv2d(6, 16, 1, bias=first_bias), nn.Conv2d(16, 3, 1, bias=second_bias)
        weight, bias = compose_pointwise_convs(first, second)
        with torch.no_grad():
            assert_same_float32(nn.functional.conv2d(maps, weight, bias), second(first(maps)))
    assert compose_pointwise_convs(nn.Conv2d(6, 16, 3), nn.Conv2d(16, 3, 1)) is None
    assert compose_pointwise_convs(nn.Conv2d(6, 16, 1, stride=2), nn.Conv2d(16, 3, 1)) is None
    assert compose_pointwise_convs(nn.Conv2d(6, 6, 1, groups=6), nn.Conv2d(6, 3, 1)) is None


@pytest.mark.parametrize("batch_size", [0, 1, 3])
@pytest.mark.parametrize("with_bias", [False, True])
def test_pointwise_conv_as_a_matrix_product_equals_the_conv(batch_size, with_bias):
    generator = torch.Generator().manual_seed(6)
    maps = torch.randn(batch_size, 12, 7, 9, generator=generator)
    weight = torch.randn(20, 12, 1, 1, generator=generator)
    bias = torch.randn(20, generator=generator) if with_bias else None
    projected = pointwise_conv(maps, weight, bias)
    assert projected.shape == (batch_size, 20, 7, 9)
    if batch_size:  # (an empty batch has no values to compare)
        assert_same_float32(projected, nn.functional.conv2d(maps, weight, bias))


@pytest.mark.parametrize("in_place", [False, True])
def test_depthwise_pointwise_conv_norm_equals_its_conv_then_batch_norm(in_place):
    conv_norm = RepVitConvNorm(8, 8, kernel_size=1, groups=8).eval()
    with torch.no_grad():
        conv_norm.c.weight.normal_()
        conv_norm.bn.running_mean.normal_()
        conv_norm.bn.running_var.uniform_(0.5, 1.5)
        conv_norm.bn.weight.normal_()
    conv_norm.fold_for_inference = False
    maps = torch.randn(2, 8, 9, 9, generator=torch.Generator().manual_seed(5))
    with torch.set_grad_enabled(not in_place):
        assert_same_float32(conv_norm(maps), conv_norm.bn(conv_norm.c(maps)))
