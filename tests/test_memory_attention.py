import pytest
import torch

from _reference import randomise_, set_attn_implementation, transformers_component
from _video_tiny import tiny_memory_config
from edgetam_hf.configuration import EdgeTamVideoConfig
from edgetam_hf.memory_attention import EdgeTamMemoryAttention, rotate_memory_keys
from edgetam_hf.memory_encoder import EdgeTamMemoryEncoder
from edgetam_hf.perceiver import EdgeTamPerceiverResampler
from edgetam_hf.position_encoding import AxialRotaryEncoding, apply_axial_rotary
from _tolerance import assert_same_float32


def _inputs(num_objects, hidden, size, memory_dim, num_memories, tokens_per_memory, num_pointer_tokens, seed=0):
    generator = torch.Generator().manual_seed(seed)
    current_features = torch.randn(num_objects, hidden, size, size, generator=generator)
    current_position = torch.randn(num_objects, hidden, size, size, generator=generator)
    num_memory_tokens = num_memories * tokens_per_memory + num_pointer_tokens
    memory = torch.randn(num_objects, num_memory_tokens, memory_dim, generator=generator)
    memory_position = torch.randn(num_objects, num_memory_tokens, memory_dim, generator=generator)
    return current_features, current_position, memory, memory_position


def _as_sequence_first(feature_map):
    # (batch, channels, height, width) -> (height * width, batch, channels), the original's layout
    return feature_map.flatten(2).permute(2, 0, 1)


def test_default_config_has_the_original_parameter_count():
    # sam2's MemoryAttention built from configs/edgetam.yaml holds 2,961,408 parameters.
    attention = EdgeTamMemoryAttention(EdgeTamVideoConfig())
    assert sum(parameter.numel() for parameter in attention.parameters()) == 2_961_408


@pytest.mark.parity
def test_state_dict_names_and_shapes_are_transformers():
    reference = transformers_component("memory_attention")
    ours = EdgeTamMemoryAttention(EdgeTamVideoConfig())
    assert {name: tensor.shape for name, tensor in ours.state_dict().items()} == {
        name: tensor.shape for name, tensor in reference.state_dict().items()
    }


# Two objects only with SDPA: eager materialises a 4096x4096 score matrix per object.
@pytest.mark.parity
@pytest.mark.parametrize("num_objects, implementation", [(1, "sdpa"), (1, "eager"), (2, "sdpa")])
def test_matches_transformers_builtin(num_objects, implementation):
    reference = transformers_component("memory_attention", implementation, seed=7)
    ours = set_attn_implementation(EdgeTamMemoryAttention(EdgeTamVideoConfig()), implementation).eval()
    ours.load_state_dict(reference.state_dict())
    # 2 memory frames of 512 perceiver tokens and 4 object pointers of 4 tokens each.
    current_features, current_position, memory, memory_position = _inputs(num_objects, 256, 64, 64, 2, 512, 16)
    with torch.no_grad():
        expected = reference(
            _as_sequence_first(current_features),
            memory.transpose(0, 1),
            _as_sequence_first(current_position),
            memory_position.transpose(0, 1),
            num_object_pointer_tokens=16,
            num_spatial_memory_tokens=2,
        )
        output = ours(current_features, current_position, memory, memory_position, 2, 16)
    expected = expected.reshape(num_objects, 64 * 64, 256).transpose(1, 2).reshape(num_objects, 256, 64, 64)
    # transformers builds its rotary tables with cos / sin, the original (and we) with torch.polar:
    # they differ in the last bit, ~2e-6 at the output.
    assert_same_float32(output, expected)


@pytest.mark.parametrize("num_objects", [1, 3, 8])
@pytest.mark.parametrize("num_memories, num_pointer_tokens", [(1, 0), (2, 3)])
def test_sdpa_and_eager_agree_for_any_number_of_objects(num_objects, num_memories, num_pointer_tokens):
    attention = randomise_(EdgeTamMemoryAttention(tiny_memory_config()), 1).eval()
    inputs = _inputs(num_objects, 32, 8, 16, num_memories, 8, num_pointer_tokens, seed=num_objects)
    with torch.no_grad():
        sdpa = set_attn_implementation(attention, "sdpa")(*inputs, num_memories, num_pointer_tokens)
        eager = set_attn_implementation(attention, "eager")(*inputs, num_memories, num_pointer_tokens)
        last = attention(*(tensor[-1:] for tensor in inputs), num_memories, num_pointer_tokens)
    assert sdpa.shape == (num_objects, 32, 8, 8)
    assert_same_float32(sdpa, eager)
    assert_same_float32(eager[-1:], last)


def test_dropout_only_in_training():
    attention = randomise_(EdgeTamMemoryAttention(tiny_memory_config()), 2)
    inputs = _inputs(2, 32, 8, 16, 2, 8, 3)
    with torch.no_grad():
        attention.eval()
        assert torch.equal(attention(*inputs, 2, 3), attention(*inputs, 2, 3))
        attention.train()
        torch.manual_seed(0)
        assert not torch.equal(attention(*inputs, 2, 3), attention(*inputs, 2, 3))


def test_rotary_tables_match_the_complex_formula():
    # Channel pair k < head_dim / 4 turns with the column, the next head_dim / 4 with the row,
    # by position * theta ** (-4 k / head_dim) radians.
    cos, sin = AxialRotaryEncoding(head_dim=8, theta=100.0)(height=2, width=3)
    frequencies = 100.0 ** (-torch.arange(0, 8, 4).float() / 8)
    columns, rows = torch.tensor([0.0, 1, 2, 0, 1, 2]), torch.tensor([0.0, 0, 0, 1, 1, 1])
    angles = torch.cat((columns[:, None] * frequencies, rows[:, None] * frequencies), dim=-1)
    assert_same_float32(cos, angles.cos())
    assert_same_float32(sin, angles.sin())


def test_rotary_scores_depend_on_relative_position_only():
    cos, sin = AxialRotaryEncoding(head_dim=16)(height=4, width=4)
    generator = torch.Generator().manual_seed(0)
    query, key = torch.randn(2, 16, generator=generator)
    rotated_queries = apply_axial_rotary(query.expand(16, -1), cos, sin)
    rotated_keys = apply_axial_rotary(key.expand(16, -1), cos, sin)
    scores = rotated_queries @ rotated_keys.T  # scores[i, j]: query at token i, key at token j
    # token index = 4 * row + column: (0, 0) vs (1, 2) and (2, 1) vs (3, 3) are one offset apart.
    assert_same_float32(scores[0, 6], scores[9, 15])
    assert_same_float32(rotated_queries.norm(dim=-1), query.norm().expand(16))


def test_memory_keys_rotate_only_the_2d_latents():
    cos, sin = AxialRotaryEncoding(head_dim=8)(height=2, width=2)
    generator = torch.Generator().manual_seed(0)
    # 2 memory frames of (3 global + 4 window latents), then 5 object-pointer tokens.
    keys = torch.randn(1, 2, 2 * 7 + 5, 8, generator=generator)
    rotated = rotate_memory_keys(keys, cos, sin, num_spatial_memories=2, num_object_pointer_tokens=5)
    for frame_start in (0, 7):
        assert torch.equal(rotated[..., frame_start : frame_start + 3, :], keys[..., frame_start : frame_start + 3, :])
        window_latents = slice(frame_start + 3, frame_start + 7)
        assert torch.equal(rotated[..., window_latents, :], apply_axial_rotary(keys[..., window_latents, :], cos, sin))
    assert torch.equal(rotated[..., 14:, :], keys[..., 14:, :])


def test_reads_the_memories_the_encoder_and_perceiver_write():
    config = tiny_memory_config()
    encoder = randomise_(EdgeTamMemoryEncoder(config), 3).eval()
    perceiver = randomise_(EdgeTamPerceiverResampler(config), 4).eval()
    attention = randomise_(EdgeTamMemoryAttention(config), 5).eval()
    generator = torch.Generator().manual_seed(0)
    frames = [torch.randn(3, 32, 8, 8, generator=generator) for _ in range(2)]  # 2 frames, 3 objects
    with torch.no_grad():
        memories = [perceiver(*encoder(frame, torch.randn(3, 1, 32, 32, generator=generator))) for frame in frames]
        memory = torch.cat([m.memory_tokens for m in memories], dim=1)  # (3, 2 * 8, 16)
        memory_position = torch.cat([m.memory_position for m in memories], dim=1)
        current_position = torch.randn(3, 32, 8, 8, generator=generator)
        conditioned = attention(frames[-1], current_position, memory, memory_position, num_spatial_memories=2)
    assert conditioned.shape == (3, 32, 8, 8)
    assert torch.isfinite(conditioned).all()
