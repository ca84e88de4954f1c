import pytest
import torch

from _reference import randomise_, transformers_component
from _video_tiny import tiny_memory_config
from edgetam_hf.configuration import EdgeTamVideoConfig
from edgetam_hf.memory_encoder import EdgeTamMemoryEncoder
from _tolerance import assert_same_float32


def test_default_config_has_the_original_parameter_count():
    # sam2's MemoryEncoder built from configs/edgetam.yaml holds 1,384,608 parameters.
    encoder = EdgeTamMemoryEncoder(EdgeTamVideoConfig())
    assert sum(parameter.numel() for parameter in encoder.parameters()) == 1_384_608


@pytest.mark.parity
def test_state_dict_names_and_shapes_are_transformers():
    reference = transformers_component("memory_encoder")
    ours = EdgeTamMemoryEncoder(EdgeTamVideoConfig())
    assert {name: tensor.shape for name, tensor in ours.state_dict().items()} == {
        name: tensor.shape for name, tensor in reference.state_dict().items()
    }


@pytest.mark.parity
@pytest.mark.parametrize("binarize", [False, True])
def test_matches_transformers_builtin(binarize):
    reference = transformers_component("memory_encoder", seed=3)
    ours = EdgeTamMemoryEncoder(EdgeTamVideoConfig()).eval()
    ours.load_state_dict(reference.state_dict())
    generator = torch.Generator().manual_seed(0)
    # Two objects on a 16x16 grid: the encoder is fully convolutional, so a small map suffices.
    vision_features = torch.randn(2, 256, 16, 16, generator=generator)
    mask_logits = 4 * torch.randn(2, 1, 256, 256, generator=generator)
    # transformers prepares the mask in the model (`_encode_new_memory`); ours in the encoder.
    mask = (mask_logits > 0).float() if binarize else torch.sigmoid(mask_logits)
    with torch.no_grad():
        expected_features, expected_position = reference(vision_features, mask * 20.0 - 10.0)
        output = ours(vision_features, mask_logits, binarize_mask=binarize)
    # Bit-identical on CPU; the original differs by ~1e-6 through its hand-written LayerNorm2d.
    assert_same_float32(output.memory_features, expected_features)
    assert_same_float32(output.memory_position, expected_position)


def test_prepare_mask_maps_logits_into_the_trained_range():
    encoder = EdgeTamMemoryEncoder(tiny_memory_config())
    logits = torch.tensor([-1000.0, -0.5, 0.0, 0.5, 1000.0])
    torch.testing.assert_close(encoder.prepare_mask(logits), torch.sigmoid(logits) * 20 - 10)
    assert encoder.prepare_mask(logits, binarize=True).tolist() == [-10.0, -10.0, -10.0, 10.0, 10.0]


@pytest.mark.parametrize("num_objects", [1, 3, 8])
def test_objects_are_encoded_independently(num_objects):
    encoder = randomise_(EdgeTamMemoryEncoder(tiny_memory_config())).eval()
    generator = torch.Generator().manual_seed(num_objects)
    vision_features = torch.randn(num_objects, 32, 8, 8, generator=generator)
    mask_logits = torch.randn(num_objects, 1, 32, 32, generator=generator)
    with torch.no_grad():
        output = encoder(vision_features, mask_logits)
        one_by_one = [encoder(vision_features[i : i + 1], mask_logits[i : i + 1]) for i in range(num_objects)]
    assert output.memory_features.shape == (num_objects, 16, 8, 8)
    assert output.memory_position.shape == (num_objects, 16, 8, 8)
    assert_same_float32(output.memory_features, torch.cat([o.memory_features for o in one_by_one]))
    torch.testing.assert_close(output.memory_position[-1], one_by_one[0].memory_position[0])


def test_one_frame_row_is_shared_by_every_mask():
    # Tracking passes the frame's features once for all its objects; the projection then runs once.
    encoder = randomise_(EdgeTamMemoryEncoder(tiny_memory_config())).eval()
    generator = torch.Generator().manual_seed(0)
    frame_features = torch.randn(1, 32, 8, 8, generator=generator)
    mask_logits = torch.randn(3, 1, 32, 32, generator=generator)
    with torch.no_grad():
        shared = encoder(frame_features, mask_logits)
        per_object = encoder(frame_features.repeat(3, 1, 1, 1), mask_logits)
    assert shared.memory_features.shape == (3, 16, 8, 8)
    assert_same_float32(shared.memory_features, per_object.memory_features)
