import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from _reference import randomise_, randomised_transformers_edgetam
from edgetam_hf.configuration import EdgeTamMaskDecoderConfig, EdgeTamPromptEncoderConfig
from edgetam_hf.mask_decoder import EdgeTamMaskDecoder, select_single_mask_by_stability, stability_scores
from edgetam_hf.prompt_encoder import EdgeTamPromptEncoder
from _tolerance import assert_same_float32

TINY = dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32)


def tiny_decoder(**overrides) -> EdgeTamMaskDecoder:
    decoder = EdgeTamMaskDecoder(EdgeTamMaskDecoderConfig(**{**TINY, **overrides}))
    return randomise_(decoder, torch.Generator().manual_seed(0)).eval()


def tiny_inputs(batch_size: int, num_objects: int, num_tokens: int = 3, seed: int = 0) -> dict:
    """Decoder inputs for hidden size 32 on an 8x8 image embedding (masks 32x32)."""
    generator = torch.Generator().manual_seed(seed)
    return dict(
        image_embeddings=torch.randn(batch_size, 32, 8, 8, generator=generator),
        image_positional_embeddings=torch.randn(1, 32, 8, 8, generator=generator),
        sparse_prompt_embeddings=torch.randn(batch_size, num_objects, num_tokens, 32, generator=generator),
        dense_prompt_embeddings=torch.randn(batch_size, 32, 8, 8, generator=generator),
        high_resolution_features=[
            torch.randn(batch_size, 4, 32, 32, generator=generator),
            torch.randn(batch_size, 8, 16, 16, generator=generator),
        ],
    )


def test_default_config_has_the_original_parameter_count():
    # sam2's MaskDecoder in EdgeTAM (high-res convs, object-score MLP) holds 4,215,109 parameters.
    decoder = EdgeTamMaskDecoder(EdgeTamMaskDecoderConfig())
    assert sum(parameter.numel() for parameter in decoder.parameters()) == 4_215_109


# The original's dynamic multimask rule.


def _logits_with_band_fraction(fraction_in_band: float, size: int = 10) -> torch.Tensor:
    """A (size, size) map with `fraction_in_band` of its pixels at 0.01 (inside +-0.05), the rest at 5."""
    logits = torch.full((size * size,), 5.0)
    logits[: round(fraction_in_band * size * size)] = 0.01
    return logits.reshape(size, size)


def test_stability_score_is_the_iou_of_the_two_thresholded_masks():
    assert stability_scores(_logits_with_band_fraction(0.01), 0.05).item() == pytest.approx(0.99)
    assert stability_scores(_logits_with_band_fraction(0.03), 0.05).item() == pytest.approx(0.97)
    # Nothing above -delta: an empty mask is stable.
    assert stability_scores(torch.full((4, 4), -1.0), 0.05).item() == 1.0


def test_unstable_single_mask_falls_back_to_the_best_multimask_output():
    stable = _logits_with_band_fraction(0.01)  # stability 0.99 >= 0.98
    unstable = _logits_with_band_fraction(0.05)  # stability 0.95 < 0.98
    candidates = [torch.full((10, 10), float(value)) for value in (-1, 1, 2)]
    # Two rows: the first keeps its stable single mask, the second falls back to candidate 2,
    # the multimask output with the highest IoU even though the single mask scores higher.
    mask_logits = torch.stack([torch.stack([stable, *candidates]), torch.stack([unstable, *candidates])])
    iou_scores = torch.tensor([[0.9, 0.1, 0.3, 0.2], [0.9, 0.1, 0.3, 0.2]])
    chosen_logits, chosen_iou = select_single_mask_by_stability(mask_logits, iou_scores, delta=0.05, threshold=0.98)
    assert chosen_logits.shape == (2, 1, 10, 10) and chosen_iou.shape == (2, 1)
    torch.testing.assert_close(chosen_logits[0, 0], stable, rtol=0, atol=0)
    torch.testing.assert_close(chosen_logits[1, 0], candidates[1], rtol=0, atol=0)
    assert chosen_iou.flatten().tolist() == pytest.approx([0.9, 0.3])


def test_stability_rule_works_on_batch_and_object_dimensions():
    mask_logits = torch.stack([_logits_with_band_fraction(0.05), torch.zeros(10, 10), torch.ones(10, 10)])
    mask_logits = mask_logits[None].expand(3, 2, 3, 10, 10)  # (batch, num_objects, 1 + 2, H, W)
    iou_scores = torch.tensor([0.5, 0.1, 0.2]).expand(3, 2, 3)
    chosen_logits, chosen_iou = select_single_mask_by_stability(mask_logits, iou_scores, delta=0.05, threshold=0.98)
    assert chosen_logits.shape == (3, 2, 1, 10, 10)
    assert bool((chosen_logits == 1).all()) and bool((chosen_iou == 0.2).all())


def test_decoder_applies_the_stability_rule_only_in_eval_mode_and_points_with_token_zero():
    decoder = tiny_decoder()
    inputs = tiny_inputs(batch_size=2, num_objects=2)
    with torch.no_grad():
        every_mask = decoder.eval()(**inputs, multimask_output=True)
        # Make the single-mask logits tiny, hence unstable, so every row falls back.
        decoder.output_hypernetworks_mlps[0].proj_out.weight.mul_(1e-4)
        decoder.output_hypernetworks_mlps[0].proj_out.bias.mul_(1e-4)
        single = decoder(**inputs, multimask_output=False)
        training = decoder.train()(**inputs, multimask_output=False)
    best = every_mask.iou_scores.argmax(dim=-1)  # (batch, num_objects)
    expected = every_mask.mask_logits.gather(2, best[..., None, None, None].expand(-1, -1, 1, 32, 32))
    assert_same_float32(single.mask_logits, expected)
    # The object pointer token stays the single-mask token even after the fallback.
    assert not torch.equal(single.sam_output_tokens, every_mask.sam_output_tokens[:, :, :1])
    assert_same_float32(single.sam_output_tokens, training.sam_output_tokens)
    assert not torch.allclose(training.mask_logits, single.mask_logits)


# Shapes, batching and attention implementations on a tiny config.


@pytest.mark.parametrize("multimask_output, num_masks", [(True, 3), (False, 1)])
def test_output_shapes(multimask_output, num_masks):
    with torch.no_grad():
        output = tiny_decoder()(**tiny_inputs(batch_size=2, num_objects=3), multimask_output=multimask_output)
    assert output.mask_logits.shape == (2, 3, num_masks, 32, 32)
    assert output.iou_scores.shape == (2, 3, num_masks)
    assert output.sam_output_tokens.shape == (2, 3, num_masks, 32)
    assert output.object_score_logits.shape == (2, 3, 1)
    assert bool(((output.iou_scores > 0) & (output.iou_scores < 1)).all())  # sigmoid IoU head


def test_objects_are_decoded_independently_with_per_object_mask_prompts():
    decoder = tiny_decoder()
    inputs = tiny_inputs(batch_size=2, num_objects=3)
    per_object_dense = torch.randn(6, 32, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        together = decoder(**{**inputs, "dense_prompt_embeddings": per_object_dense}, multimask_output=True)
        for image in range(2):
            for obj in range(3):
                alone = decoder(
                    image_embeddings=inputs["image_embeddings"][image : image + 1],
                    image_positional_embeddings=inputs["image_positional_embeddings"],
                    sparse_prompt_embeddings=inputs["sparse_prompt_embeddings"][image : image + 1, obj : obj + 1],
                    dense_prompt_embeddings=per_object_dense[3 * image + obj : 3 * image + obj + 1],
                    high_resolution_features=[f[image : image + 1] for f in inputs["high_resolution_features"]],
                    multimask_output=True,
                )
                for joint, single in zip(together, alone, strict=True):
                    assert_same_float32(joint[image, obj], single[0, 0])


def test_decodes_without_sparse_tokens():
    with torch.no_grad():
        output = tiny_decoder()(**tiny_inputs(batch_size=1, num_objects=2, num_tokens=0), multimask_output=False)
    assert output.mask_logits.shape == (1, 2, 1, 32, 32)
    assert bool(output.mask_logits.isfinite().all())


def test_sdpa_and_eager_attention_agree():
    decoder = tiny_decoder()
    inputs = tiny_inputs(batch_size=2, num_objects=2, num_tokens=4)
    with torch.no_grad():
        with_sdpa = decoder(**inputs, multimask_output=True)
        decoder.set_attn_implementation("eager")
        with_eager = decoder(**inputs, multimask_output=True)
    for sdpa_output, eager_output in zip(with_sdpa, with_eager, strict=True):
        assert_same_float32(sdpa_output, eager_output)
    with pytest.raises(ValueError, match="attn_implementation"):
        decoder.set_attn_implementation("flash_attention_2")


def test_project_high_resolution_features():
    decoder = tiny_decoder()
    levels = [torch.randn(2, 32, 32, 32), torch.randn(2, 32, 16, 16), torch.randn(2, 32, 8, 8)]
    with torch.no_grad():
        feat_s0, feat_s1 = decoder.project_high_resolution_features(levels)
    assert feat_s0.shape == (2, 4, 32, 32) and feat_s1.shape == (2, 8, 16, 16)
    torch.testing.assert_close(feat_s0, decoder.conv_s0(levels[0]))


# Parity with transformers' built-in EdgeTam mask decoder (the same random weights).


@pytest.fixture(scope="module")
def heads():
    reference = randomised_transformers_edgetam()
    prompt_encoder = EdgeTamPromptEncoder(EdgeTamPromptEncoderConfig()).eval()
    prompt_encoder.load_state_dict(reference.prompt_encoder.state_dict())
    decoder = EdgeTamMaskDecoder(EdgeTamMaskDecoderConfig()).eval()
    assert set(decoder.state_dict()) == set(reference.mask_decoder.state_dict())
    decoder.load_state_dict(reference.mask_decoder.state_dict())
    return prompt_encoder, decoder, reference


@pytest.fixture(scope="module")
def images():
    """Two images: image embeddings and the projected high-resolution features."""
    generator = torch.Generator().manual_seed(10)
    embeddings = torch.randn(2, 256, 64, 64, generator=generator)
    high_resolution = [
        torch.randn(2, 32, 256, 256, generator=generator),
        torch.randn(2, 64, 128, 128, generator=generator),
    ]
    return embeddings, high_resolution


@pytest.mark.parity
def test_state_dict_names_and_shapes_are_transformers(heads):
    _, decoder, reference = heads
    assert {name: tensor.shape for name, tensor in decoder.state_dict().items()} == {
        name: tensor.shape for name, tensor in reference.mask_decoder.state_dict().items()
    }


def _prompts(kind: str) -> dict:
    generator = torch.Generator().manual_seed(20)
    points = torch.rand(2, 3, 3, 2, generator=generator) * 1023
    labels = torch.randint(0, 2, (2, 3, 3), generator=generator)
    labels[0, 2, 1:] = -1
    boxes = torch.sort(torch.rand(2, 3, 2, 2, generator=generator) * 1023, dim=2).values.reshape(2, 3, 4)
    masks = 4 * torch.randn(2, 1, 256, 256, generator=generator)  # transformers: one mask per image
    prompts = {
        "points": dict(input_points=points, input_labels=labels),
        "boxes": dict(input_boxes=boxes),
        "box_and_points": dict(input_points=points, input_labels=labels, input_boxes=boxes),
        "mask_and_points": dict(input_points=points, input_labels=labels, input_masks=masks),
    }[kind]
    return {"input_points": None, "input_labels": None, "input_boxes": None, "input_masks": None, **prompts}


def _decode_both(heads, images, prompts: dict, multimask_output: bool):
    prompt_encoder, decoder, reference = heads
    embeddings, high_resolution = images
    with torch.no_grad():
        sparse, dense = prompt_encoder(**prompts)
        positional = prompt_encoder.get_image_positional_embeddings()
        ours = decoder(embeddings, positional, sparse, dense, multimask_output, high_resolution)
        reference_sparse, reference_dense = reference.prompt_encoder(**prompts)
        # Same kernel on both sides (the original's on CPU), so only the module math is compared.
        with sdpa_kernel(SDPBackend.MATH):
            expected = reference.mask_decoder(
                embeddings,
                reference.get_image_wide_positional_embeddings().repeat(2, 1, 1, 1),
                reference_sparse,
                reference_dense,
                multimask_output,
                high_resolution,
            )
    return ours, expected


@pytest.mark.parity
@pytest.mark.parametrize("multimask_output", [True, False])
@pytest.mark.parametrize("kind", ["points", "boxes", "box_and_points", "mask_and_points"])
def test_matches_transformers(heads, images, kind, multimask_output):
    ours, expected = _decode_both(heads, images, _prompts(kind), multimask_output)
    num_masks = 3 if multimask_output else 1
    assert ours.mask_logits.shape == (2, 3, num_masks, 256, 256)
    for name, value, expected_value in zip(ours._fields, ours, expected, strict=True):
        assert_same_float32(value, expected_value, msg=name)


@pytest.mark.parity
def test_stability_fallback_matches_transformers(heads, images):
    prompt_encoder, decoder, reference = heads
    state = {name: tensor.clone() for name, tensor in decoder.state_dict().items()}
    prompts = _prompts("points")
    try:
        # Halving the single-mask logits puts those of image 0 under the stability threshold
        # and keeps image 1 above it: both outcomes of the rule in one batch.
        with torch.no_grad():
            for module in (decoder, reference.mask_decoder):
                module.output_hypernetworks_mlps[0].proj_out.weight.mul_(0.5)
                module.output_hypernetworks_mlps[0].proj_out.bias.mul_(0.5)
            ours, expected = _decode_both(heads, images, prompts, multimask_output=False)
            multimask, _ = _decode_both(heads, images, prompts, multimask_output=True)
            decoder.config.dynamic_multimask_via_stability = False
            token_zero, _ = _decode_both(heads, images, prompts, multimask_output=False)
    finally:
        decoder.config.dynamic_multimask_via_stability = True
        decoder.load_state_dict(state)
        reference.mask_decoder.load_state_dict(state)

    for name, value, expected_value in zip(ours._fields, ours, expected, strict=True):
        assert_same_float32(value, expected_value, msg=name)
    is_stable = stability_scores(token_zero.mask_logits[:, :, 0], 0.05) >= 0.98  # (batch, num_objects)
    assert bool(is_stable.any()) and bool((~is_stable).any()), "expected both stable and unstable objects"
    best = multimask.iou_scores.argmax(dim=-1)
    fallback = multimask.mask_logits.gather(2, best[..., None, None, None].expand(-1, -1, 1, 256, 256))
    chosen = torch.where(is_stable[..., None, None, None], token_zero.mask_logits, fallback)
    assert_same_float32(ours.mask_logits, chosen)
    assert_same_float32(ours.sam_output_tokens, token_zero.sam_output_tokens)
