import pytest
import torch

from _reference import randomise_, set_attn_implementation, transformers_component
from _video_tiny import tiny_memory_config
from edgetam_hf.configuration import EdgeTamVideoConfig
from edgetam_hf.perceiver import EdgeTamPerceiverResampler
from edgetam_hf.position_encoding import SinePositionEncoding
from _tolerance import assert_same_float32


def _memory_map(num_objects: int, channels: int, size: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    memory_features = torch.randn(num_objects, channels, size, size, generator=generator)
    memory_position = SinePositionEncoding(channels)(size, size).expand(num_objects, -1, -1, -1)
    return memory_features, memory_position


def test_default_config_has_the_original_parameter_count():
    # sam2's PerceiverResampler built from configs/edgetam.yaml holds 230,784 parameters.
    perceiver = EdgeTamPerceiverResampler(EdgeTamVideoConfig())
    assert sum(parameter.numel() for parameter in perceiver.parameters()) == 230_784


@pytest.mark.parity
def test_state_dict_names_and_shapes_are_transformers():
    reference = transformers_component("spatial_perceiver")
    ours = EdgeTamPerceiverResampler(EdgeTamVideoConfig())
    assert {name: tensor.shape for name, tensor in ours.state_dict().items()} == {
        name: tensor.shape for name, tensor in reference.state_dict().items()
    }


@pytest.mark.parity
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_one_object_matches_transformers_builtin(implementation):
    # transformers' perceiver equals the original's bit for bit on CPU for one object (checked
    # against sam2's PerceiverResampler with the same weights); it fails for several objects,
    # like the original.
    reference = transformers_component("spatial_perceiver", implementation, seed=5)
    ours = set_attn_implementation(EdgeTamPerceiverResampler(EdgeTamVideoConfig()), implementation).eval()
    ours.load_state_dict(reference.state_dict())
    memory_features, memory_position = _memory_map(1, 64, 64)
    with torch.no_grad():
        expected_tokens, expected_position = reference(memory_features, memory_position)
        output = ours(memory_features, memory_position)
    assert_same_float32(output.memory_tokens, expected_tokens)
    assert_same_float32(output.memory_position, expected_position)


def test_three_objects_equal_one_at_a_time_at_edgetam_size():
    perceiver = randomise_(EdgeTamPerceiverResampler(EdgeTamVideoConfig()), 1).eval()
    memory_features, memory_position = _memory_map(3, 64, 64, seed=1)
    with torch.no_grad():
        output = perceiver(memory_features, memory_position)
        one_by_one = [perceiver(memory_features[i : i + 1], memory_position[i : i + 1]) for i in range(3)]
    assert output.memory_tokens.shape == output.memory_position.shape == (3, 512, 64)
    assert_same_float32(output.memory_tokens, torch.cat([o.memory_tokens for o in one_by_one]))
    assert_same_float32(output.memory_position, torch.cat([o.memory_position for o in one_by_one]))
    # Global latents carry a zero position; the 2D latents the sine encoding of the 16x16 window grid.
    assert not output.memory_position[:, :256].any()
    assert_same_float32(output.memory_position[0, 256:], SinePositionEncoding(64)(16, 16).flatten(1).T)


@pytest.mark.parametrize("num_objects", [1, 3, 8])
def test_sdpa_and_eager_agree_for_any_number_of_objects(num_objects):
    perceiver = randomise_(EdgeTamPerceiverResampler(tiny_memory_config()), 2).eval()
    memory_features, memory_position = _memory_map(num_objects, 16, 8, seed=num_objects)
    with torch.no_grad():
        sdpa = set_attn_implementation(perceiver, "sdpa")(memory_features, memory_position)
        eager = set_attn_implementation(perceiver, "eager")(memory_features, memory_position)
        first = perceiver(memory_features[:1], memory_position[:1])
    assert sdpa.memory_tokens.shape == (num_objects, 8, 16)
    assert_same_float32(sdpa.memory_tokens, eager.memory_tokens)
    assert_same_float32(eager.memory_tokens[:1], first.memory_tokens)


def test_a_2d_latent_sees_only_its_window():
    perceiver = randomise_(EdgeTamPerceiverResampler(tiny_memory_config()), 3).eval()
    memory_features, memory_position = _memory_map(1, 16, 8)
    changed = memory_features.clone()
    changed[:, :, 4:, :4] += 1.0  # the bottom-left of the 2x2 windows
    with torch.no_grad():
        before = perceiver(memory_features, memory_position).memory_tokens
        after = perceiver(changed, memory_position).memory_tokens
    moved = (after - before).abs().amax(dim=-1)[0]  # (4 global + 4 window latents,)
    assert moved[:4].gt(0).all()  # the global latents see the whole map
    assert moved[4:].gt(0).tolist() == [False, False, True, False]


@pytest.mark.parametrize("num_latents, num_latents_2d", [(0, 4), (4, 0)])
def test_either_set_of_latents_can_be_left_out(num_latents, num_latents_2d):
    config = tiny_memory_config(perceiver_resampler_num_latents=num_latents, perceiver_resampler_num_latents_2d=num_latents_2d)
    perceiver = EdgeTamPerceiverResampler(config).eval()
    assert ("latents_1d" in perceiver.state_dict(), "latents_2d" in perceiver.state_dict()) == (num_latents > 0, num_latents_2d > 0)
    with torch.no_grad():
        output = perceiver(*_memory_map(3, 16, 8))
    assert output.memory_tokens.shape == output.memory_position.shape == (3, 4, 16)


def test_memory_map_must_split_into_equal_windows():
    perceiver = EdgeTamPerceiverResampler(tiny_memory_config())
    memory_features, memory_position = _memory_map(1, 16, 7)
    with pytest.raises(ValueError, match="equal windows"):
        perceiver(memory_features, memory_position)
