"""EdgeTamModel on tiny configs: shapes, batching, embedding reuse, save / load, attention kernels,
bad input; and the default config against the released model and transformers' built-in port."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from edgetam_hf import EdgeTamConfig, EdgeTamModel, EdgeTamProcessor
from _image_tiny import TINY_IMAGE_SIZE, tiny_image_model
from _reference import randomised_transformers_edgetam
from _tolerance import assert_same_float32, assert_same_logits


@pytest.fixture(scope="module")
def tiny_model() -> EdgeTamModel:
    return tiny_image_model()


def _pixels(batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


def _points(coordinates) -> torch.Tensor:
    return torch.tensor(coordinates, dtype=torch.float32)


def test_default_config_is_the_released_edgetam():
    config = EdgeTamConfig()
    assert config.vision_config.backbone_embed_dims == [48, 96, 192, 384]
    assert config.vision_config.backbone_channel_list == [384, 192, 96, 48]
    assert config.vision_config.fpn_hidden_size == 256
    assert config.prompt_encoder_config.image_size == 1024
    model = EdgeTamModel(config)
    # The original's image parts: trunk 4,713,712 + neck 185,344 + prompt encoder 6,220 +
    # mask decoder 4,215,109 + no-memory embedding 256 (keys.json of the fixture checkpoint).
    assert sum(parameter.numel() for parameter in model.parameters()) == 9_120_641


@torch.no_grad()
def test_output_shapes(tiny_model):
    points = _points([[[[40.0, 50.0], [100.0, 120.0]]]])  # (1 image, 1 object, 2 points, 2)
    outputs = tiny_model(pixel_values=_pixels(), input_points=points, input_labels=torch.tensor([[[1, 0]]]))
    mask_side = TINY_IMAGE_SIZE // 4
    assert outputs.pred_masks.shape == (1, 1, 3, mask_side, mask_side)
    assert outputs.iou_scores.shape == (1, 1, 3)
    assert outputs.object_score_logits.shape == (1, 1, 1)
    assert [tuple(e.shape) for e in outputs.image_embeddings] == [(1, 4, 64, 64), (1, 8, 32, 32), (1, 32, 16, 16)]

    single = tiny_model(pixel_values=_pixels(), input_points=points, multimask_output=False)
    assert single.pred_masks.shape == (1, 1, 1, mask_side, mask_side)


@torch.no_grad()
def test_embedding_reuse_equals_full_forward(tiny_model):
    pixels = _pixels(batch=2)
    boxes = _points([[[10.0, 20.0, 120.0, 140.0]], [[30.0, 30.0, 200.0, 90.0]]])
    full = tiny_model(pixel_values=pixels, input_boxes=boxes)
    embeddings = tiny_model.get_image_embeddings(pixels)
    reused = tiny_model(image_embeddings=embeddings, input_boxes=boxes)
    assert_same_logits(reused.pred_masks, full.pred_masks)
    assert_same_logits(reused.iou_scores, full.iou_scores)


@torch.no_grad()
def test_batched_images_with_different_object_counts_equal_separate_calls(tiny_model):
    """Two images, two objects and one object: the processor pads the second image with an
    all-padding object; every real object equals its image run alone."""
    processor = EdgeTamProcessor(target_size=TINY_IMAGE_SIZE)  # the tiny model reads a 256 frame
    sizes = [[TINY_IMAGE_SIZE, TINY_IMAGE_SIZE]] * 2
    points = [[[[30, 40]], [[150, 60]]], [[[90, 200]]]]
    labels = [[[1], [1]], [[1]]]
    prompts = processor(input_points=points, input_labels=labels, original_sizes=sizes, return_tensors="pt")
    pixels = _pixels(batch=2)
    batched = tiny_model(pixel_values=pixels, input_points=prompts["input_points"], input_labels=prompts["input_labels"])

    for image_index in range(2):
        alone = processor(
            input_points=[points[image_index]],
            input_labels=[labels[image_index]],
            original_sizes=[sizes[image_index]],
            return_tensors="pt",
        )
        separate = tiny_model(
            pixel_values=pixels[image_index : image_index + 1],
            input_points=alone["input_points"],
            input_labels=alone["input_labels"],
        )
        num_objects = len(points[image_index])
        assert_same_logits(batched.pred_masks[image_index, :num_objects], separate.pred_masks[0])
        assert_same_logits(batched.iou_scores[image_index, :num_objects], separate.iou_scores[0])


@torch.no_grad()
def test_mask_prompt_alone_and_with_points(tiny_model):
    mask_side = TINY_IMAGE_SIZE // 4
    mask = torch.randn(1, 2, mask_side, mask_side, generator=torch.Generator().manual_seed(3))
    alone = tiny_model(pixel_values=_pixels(), input_masks=mask, multimask_output=False)
    assert alone.pred_masks.shape == (1, 2, 1, mask_side, mask_side)
    with_points = tiny_model(
        pixel_values=_pixels(), input_masks=mask, input_points=_points([[[[20.0, 20.0]], [[200.0, 30.0]]]])
    )
    assert with_points.pred_masks.shape == (1, 2, 3, mask_side, mask_side)


@torch.no_grad()
def test_sdpa_and_eager_attention_agree(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    eager = EdgeTamModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert all(
        module.attn_implementation == "eager" for module in eager.modules() if hasattr(module, "attn_implementation")
    )
    points = _points([[[[60.0, 70.0]]]])
    expected = tiny_model(pixel_values=_pixels(), input_points=points)
    actual = eager(pixel_values=_pixels(), input_points=points)
    assert_same_logits(actual.pred_masks, expected.pred_masks)
    assert_same_logits(actual.iou_scores, expected.iou_scores)


@torch.no_grad()
def test_save_and_load_round_trip(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    loaded = EdgeTamModel.from_pretrained(tmp_path).eval()
    assert _architecture(loaded.config.to_dict()) == _architecture(tiny_model.config.to_dict())
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    points = _points([[[[60.0, 70.0]]]])
    expected = tiny_model(pixel_values=_pixels(), input_points=points).pred_masks
    assert_same_logits(loaded(pixel_values=_pixels(), input_points=points).pred_masks, expected)


def _architecture(config_dict: dict) -> dict:
    """A config's fields without the bookkeeping that saving and loading sets (path, dtype, auto_map)."""
    return {
        key: _architecture(value) if isinstance(value, dict) else value
        for key, value in config_dict.items()
        if key not in ("_name_or_path", "dtype", "auto_map")
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pixel_values": torch.zeros(3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)}, "pixel_values"),
        ({"pixel_values": torch.zeros(1, 4, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)}, "pixel_values"),
        ({"input_points": torch.zeros(1, 1, 2)}, "input_points"),
        ({"input_points": torch.zeros(1, 1, 1, 3)}, "input_points"),
        ({"input_points": torch.zeros(1, 1, 2, 2), "input_labels": torch.ones(1, 1, 3)}, "input_labels"),
        ({"input_labels": torch.ones(1, 1, 1)}, "input_labels"),
        ({"input_boxes": torch.tensor([[[50.0, 10.0, 20.0, 40.0]]])}, "input_boxes"),
        ({"input_boxes": torch.zeros(1, 1, 3)}, "input_boxes"),
        ({"input_boxes": torch.zeros(1, 2, 4), "input_points": torch.zeros(1, 1, 1, 2)}, "input_boxes"),
        ({"input_masks": torch.zeros(1, 1, 32, 32)}, "input_masks"),
        ({"input_points": torch.full((1, 1, 1, 2), float("nan"))}, "input_points holds NaN"),
        ({"input_boxes": torch.tensor([[[1.0, 2.0, float("inf"), 40.0]]])}, "input_boxes holds NaN or infinite"),
        (
            {"input_points": torch.ones(1, 1, 1, 2), "input_masks": torch.full((1, 1, 64, 64), float("nan"))},
            "input_masks holds NaN",
        ),
        ({"pixel_values": torch.full((1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE), float("nan"))}, "pixel_values holds NaN"),
    ],
)
def test_bad_input_names_the_argument(tiny_model, kwargs, message):
    kwargs.setdefault("pixel_values", _pixels())
    with pytest.raises(ValueError, match=message):
        tiny_model(**kwargs)


def test_pixel_values_and_embeddings_are_exclusive(tiny_model):
    with pytest.raises(ValueError, match="exactly one of pixel_values or image_embeddings"):
        tiny_model(input_points=_points([[[[1.0, 1.0]]]]))


@pytest.mark.parity
@torch.no_grad()
def test_transformers_checkpoint_loads_and_gives_the_same_outputs():
    """A state dict of transformers' EdgeTamModel loads into ours with no missing or unexpected key,
    and both models give the same masks for the same pixel_values and prompts."""
    reference = randomised_transformers_edgetam()
    ours = EdgeTamModel(EdgeTamConfig()).eval()
    reference_state = reference.state_dict()
    assert set(reference_state) == set(ours.state_dict())
    ours.load_state_dict(reference_state, strict=True)

    pixels = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(5))
    prompts = {
        "points": {"input_points": _points([[[[300.0, 400.0], [620.0, 380.0]]]]), "input_labels": torch.tensor([[[1, 0]]])},
        "boxes": {"input_boxes": _points([[[100.0, 200.0, 700.0, 650.0], [400.0, 50.0, 900.0, 500.0]]])},
    }
    embeddings = ours.get_image_embeddings(pixels)
    # transformers' attention runs torch's default CPU kernel; ours runs the math kernel as the
    # original does. Put both on the math kernel to compare the ports, not the kernels.
    with sdpa_kernel(SDPBackend.MATH):
        reference_embeddings = reference.get_image_embeddings(pixels)
        for expected, actual in zip(reference_embeddings, embeddings, strict=True):
            assert_same_float32(actual, expected)
        for prompt in prompts.values():
            for multimask_output in (True, False):
                expected = reference(image_embeddings=reference_embeddings, multimask_output=multimask_output, **prompt)
                actual = ours(image_embeddings=embeddings, multimask_output=multimask_output, **prompt)
                assert_same_logits(actual.pred_masks, expected.pred_masks)
                assert_same_logits(actual.iou_scores, expected.iou_scores)
                assert_same_logits(actual.object_score_logits, expected.object_score_logits)


# ------------------------------------------------------------------------------ what a new user passes


def _tiny_processor() -> EdgeTamProcessor:
    from edgetam_hf.cli.models import image_processor_for

    return EdgeTamProcessor(image_processor_for(tiny_image_model()), target_size=TINY_IMAGE_SIZE)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@torch.no_grad()
def test_reduced_precision_model_takes_the_processors_float32_inputs(tiny_model, dtype):
    processor = _tiny_processor()
    image = (torch.rand(3, 60, 80, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8)
    inputs = processor(images=image, input_points=[[[[20, 30]]]], input_boxes=[[[5, 5, 50, 40]]],
                       input_masks=torch.zeros(1, 1, TINY_IMAGE_SIZE // 4, TINY_IMAGE_SIZE // 4))
    assert inputs["pixel_values"].dtype == torch.float32
    reduced = tiny_image_model().to(dtype)
    outputs = reduced(**inputs)
    reused = reduced(image_embeddings=tiny_model.get_image_embeddings(inputs["pixel_values"]), input_boxes=inputs["input_boxes"])
    expected = tiny_model(**inputs)
    assert outputs.pred_masks.dtype == dtype and reused.pred_masks.dtype == dtype
    # float16 / bfloat16 keep 11 / 8 significant bits. Measured on the tiny model: IoU scores (~0.45)
    # move by <1 unit of the last place (eps) and mask logits by ~12 eps x their largest magnitude
    # (rounding through ~20 layers); the tolerances leave a margin of 4 and ~1.4.
    eps = torch.finfo(dtype).eps
    iou_tolerance = 4 * eps * max(1.0, expected.iou_scores.abs().max().item())
    logit_tolerance = 16 * eps * expected.pred_masks.abs().max().item()
    torch.testing.assert_close(outputs.iou_scores.float(), expected.iou_scores, rtol=0, atol=iou_tolerance)
    torch.testing.assert_close(outputs.pred_masks.float(), expected.pred_masks, rtol=0, atol=logit_tolerance)


def test_saved_weights_are_as_readable_as_the_config(tiny_model, tmp_path):
    import stat

    tiny_model.save_pretrained(tmp_path)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()}
    assert modes["model.safetensors"] == modes["config.json"], modes


@torch.no_grad()
def test_prompts_in_image_pixels_are_refused_naming_the_processor(tiny_model):
    embeddings = tiny_model.get_image_embeddings(_pixels())
    beyond_the_frame = _points([[[10.0, 20.0, TINY_IMAGE_SIZE + 300.0, 140.0]]])  # a 1800-wide photo's pixels
    with pytest.raises(ValueError, match=r"input_boxes .* outside the model's 256x256 input frame.*processor\(original_sizes"):
        tiny_model(image_embeddings=embeddings, input_boxes=beyond_the_frame)
    with pytest.raises(ValueError, match=r"input_points .* outside .*processor\(original_sizes"):
        tiny_model(image_embeddings=embeddings, input_points=_points([[[[-5.0, 10.0]]]]))
    with pytest.raises(ValueError, match=r"input_boxes must be a torch.Tensor .*got list.*processor\(original_sizes"):
        tiny_model(image_embeddings=embeddings, input_boxes=[[[10, 20, 100, 140]]])
    # the processor's padding points (label -1, coordinates -10) are not prompts and pass
    processor = _tiny_processor()
    padded = processor(original_sizes=[[60, 80]], input_points=[[[[20, 30], [40, 50]], [[10, 10]]]])
    assert padded["input_labels"].min() == -1
    tiny_model(image_embeddings=embeddings, input_points=padded["input_points"], input_labels=padded["input_labels"])
