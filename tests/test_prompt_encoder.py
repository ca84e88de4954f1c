import pytest
import torch

from _reference import randomise_, randomised_transformers_edgetam
from edgetam_hf.configuration import EdgeTamPromptEncoderConfig
from edgetam_hf.prompt_encoder import EdgeTamPromptEncoder
from _tolerance import assert_same_float32


def tiny_prompt_encoder() -> EdgeTamPromptEncoder:
    config = EdgeTamPromptEncoderConfig(hidden_size=32, image_size=128, patch_size=16)
    return randomise_(EdgeTamPromptEncoder(config), torch.Generator().manual_seed(0)).eval()


def test_default_config_has_the_original_parameter_count():
    # sam2's PromptEncoder in EdgeTAM holds 6,220 parameters (its Fourier matrix is a buffer).
    encoder = EdgeTamPromptEncoder(EdgeTamPromptEncoderConfig())
    assert sum(parameter.numel() for parameter in encoder.parameters()) == 6_220


def test_click_embedding_is_the_shifted_fourier_code_plus_its_label_embedding():
    encoder = tiny_prompt_encoder()
    points = torch.tensor([[[[10.0, 20.0], [64.0, 3.0], [0.0, 0.0]]]])  # (1 image, 1 object, 3, 2)
    labels = torch.tensor([[[1, 0, -1]]])
    with torch.no_grad():
        sparse, dense = encoder(points, labels)
        # The original shifts clicks to the pixel centre and divides by the input size.
        expected_positive = encoder.shared_embedding(torch.tensor([10.5, 20.5]) / 128) + encoder.point_embed.weight[1]
        expected_negative = encoder.shared_embedding(torch.tensor([64.5, 3.5]) / 128) + encoder.point_embed.weight[0]
    assert sparse.shape == (1, 1, 4, 32)  # three clicks and the appended padding point
    assert_same_float32(sparse[0, 0, 0], expected_positive)
    assert_same_float32(sparse[0, 0, 1], expected_negative)
    # A padding click and the appended padding point carry only `not_a_point_embed`.
    torch.testing.assert_close(sparse[0, 0, 2], encoder.not_a_point_embed.weight[0], rtol=0, atol=0)
    torch.testing.assert_close(sparse[0, 0, 3], encoder.not_a_point_embed.weight[0], rtol=0, atol=0)
    assert dense.shape == (1, 32, 8, 8)
    torch.testing.assert_close(dense, encoder.no_mask_embed.weight.reshape(1, 32, 1, 1).expand(1, 32, 8, 8))


def test_box_becomes_two_labelled_corners_before_the_clicks():
    encoder = tiny_prompt_encoder()
    box = torch.tensor([[[8.0, 16.0, 100.0, 90.0]]])
    click = torch.tensor([[[[50.0, 40.0]]]])
    with torch.no_grad():
        box_and_click, _ = encoder(click, torch.tensor([[[1]]]), box)
        as_points, _ = encoder(
            torch.tensor([[[[8.0, 16.0], [100.0, 90.0], [50.0, 40.0]]]]), torch.tensor([[[2, 3, 1]]])
        )
    assert box_and_click.shape == (1, 1, 4, 32)
    assert_same_float32(box_and_click, as_points)


def test_mask_prompt_alone_gives_no_sparse_token():
    encoder = tiny_prompt_encoder()
    masks = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        sparse, dense = encoder(torch.zeros(1, 2, 0, 2), torch.zeros(1, 2, 0, dtype=torch.long), None, masks)
    assert sparse.shape == (1, 2, 0, 32)
    assert dense.shape == (2, 32, 8, 8)


def test_image_positional_embeddings_encode_the_cell_centres():
    encoder = tiny_prompt_encoder()
    with torch.no_grad():
        grid = encoder.get_image_positional_embeddings()
        corner = encoder.shared_embedding(torch.tensor([0.5 / 8, 0.5 / 8]))
        last_row_first_column = encoder.shared_embedding(torch.tensor([0.5 / 8, 7.5 / 8]))
    assert grid.shape == (1, 32, 8, 8)
    assert_same_float32(grid[0, :, 0, 0], corner)
    assert_same_float32(grid[0, :, 7, 0], last_row_first_column)


# Parity with transformers' built-in EdgeTam prompt encoder (the same random weights).


@pytest.fixture(scope="module")
def prompt_encoders():
    reference = randomised_transformers_edgetam().prompt_encoder
    ours = EdgeTamPromptEncoder(EdgeTamPromptEncoderConfig()).eval()
    assert set(ours.state_dict()) == set(reference.state_dict())
    ours.load_state_dict(reference.state_dict())
    return ours, reference


@pytest.mark.parity
def test_state_dict_names_and_shapes_are_transformers(prompt_encoders):
    ours, reference = prompt_encoders
    assert {name: tensor.shape for name, tensor in ours.state_dict().items()} == {
        name: tensor.shape for name, tensor in reference.state_dict().items()
    }


def _points_and_labels(generator):
    """Four clicks for each of 3 objects on 2 images, some of them padding (-1)."""
    points = torch.rand(2, 3, 4, 2, generator=generator) * 1023
    labels = torch.randint(0, 2, (2, 3, 4), generator=generator)
    labels[0, -1, -2:] = -1  # padding clicks
    labels[-1, 0, -1] = -1
    return points, labels


@pytest.mark.parity
@pytest.mark.parametrize("with_masks", [False, True])
def test_points_with_padding_labels_and_masks_match_transformers(prompt_encoders, with_masks):
    ours, reference = prompt_encoders
    generator = torch.Generator().manual_seed(1)
    points, labels = _points_and_labels(generator)
    # transformers' model takes one mask prompt per image.
    masks = 4 * torch.randn(2, 1, 256, 256, generator=generator) if with_masks else None
    with torch.no_grad():
        sparse, dense = ours(points, labels, None, masks)
        expected_sparse, expected_dense = reference(points, labels, None, masks)
    assert sparse.shape == (2, 3, 5, 256) and dense.shape == (2, 256, 64, 64)
    assert_same_float32(sparse, expected_sparse)
    assert_same_float32(dense, expected_dense)


@pytest.mark.parity
def test_boxes_match_transformers(prompt_encoders):
    ours, reference = prompt_encoders
    boxes = torch.sort(torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(2)) * 1023, dim=2).values
    boxes = boxes.reshape(2, 3, 4)
    with torch.no_grad():
        sparse, _ = ours(None, None, boxes, None)
        expected_sparse, _ = reference(None, None, boxes, None)
    assert sparse.shape == (2, 3, 3, 256)  # two corners and the padding point
    assert_same_float32(sparse, expected_sparse)


@pytest.mark.parity
def test_box_and_points_match_transformers_up_to_token_order(prompt_encoders):
    ours, reference = prompt_encoders
    generator = torch.Generator().manual_seed(3)
    points, labels = _points_and_labels(generator)
    boxes = torch.sort(torch.rand(2, 3, 2, 2, generator=generator) * 1023, dim=2).values.reshape(2, 3, 4)
    with torch.no_grad():
        sparse, _ = ours(points, labels, boxes, None)
        expected_sparse, _ = reference(points, labels, boxes, None)
    # Ours is the original's [corners, clicks, padding]; transformers' is [clicks, corners, padding].
    reordered = torch.cat([sparse[:, :, 2:6], sparse[:, :, 0:2], sparse[:, :, 6:]], dim=2)
    assert_same_float32(reordered, expected_sparse)


@pytest.mark.parity
def test_image_positional_embeddings_match_transformers():
    reference = randomised_transformers_edgetam()
    ours = EdgeTamPromptEncoder(EdgeTamPromptEncoderConfig()).eval()
    ours.load_state_dict(reference.prompt_encoder.state_dict())
    with torch.no_grad():
        assert_same_float32(ours.get_image_positional_embeddings(), reference.get_image_wide_positional_embeddings())
