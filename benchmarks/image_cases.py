"""Image cases: the image encoder, and one click through the prompt encoder and mask decoder with
the image embeddings computed beforehand (the interactive path: one encoding, many clicks).

Every implementation gets the same pixels (our processor's output) and the same click, so only
the models are compared; preprocessing is not part of these rows.
"""

import torch

from .media import BenchmarkImage
from .models import ORIGINAL, OURS, Lineup
from .results import CaseResult, measure_calls


def run_image_encoder(lineup: Lineup, image: BenchmarkImage, options) -> CaseResult:
    size = lineup.image_size
    result = CaseResult("image_encoder", f"image encoder, {size}x{size}")
    pixel_values = _model_input(lineup, image, options)
    calls = {}
    for name, model in lineup.models.items():
        if name == ORIGINAL:
            calls[name] = lambda predictor=model: original_image_features(predictor, pixel_values)
        else:
            calls[name] = lambda model=model: model.get_image_embeddings(pixel_values)
    measure_calls(result, calls, options)
    return result


def run_prompt_decoder(lineup: Lineup, image: BenchmarkImage, options) -> CaseResult:
    result = CaseResult("prompt_decoder", "prompt encoder + mask decoder, 1 click, cached embeddings")
    pixel_values = _model_input(lineup, image, options)
    points, labels = _click_in_model_frame(lineup, image, options)
    calls = {}
    for name, model in lineup.models.items():
        if name == ORIGINAL:
            features = original_image_features(model, pixel_values)
            calls[name] = lambda predictor=model, features=features: original_prompt_and_decoder(
                predictor, features, points[0], labels[0]
            )
        else:
            embeddings = model.get_image_embeddings(pixel_values)
            calls[name] = lambda model=model, embeddings=embeddings: model(
                image_embeddings=embeddings, input_points=points, input_labels=labels
            )
    measure_calls(result, calls, options)
    return result


def _model_input(lineup: Lineup, image: BenchmarkImage, options) -> torch.Tensor:
    """(1, 3, size, size): our processor's pixels, shared by every implementation."""
    pixel_values = lineup.processors[OURS](images=image.image, return_tensors="pt")["pixel_values"]
    return pixel_values.to(device=options.device, dtype=options.dtype)


def _click_in_model_frame(lineup: Lineup, image: BenchmarkImage, options) -> tuple[torch.Tensor, torch.Tensor]:
    """The image's click as `(input_points (1, 1, 1, 2), input_labels (1, 1, 1))` in model-input pixels."""
    x, y = image.click
    scale_x = lineup.image_size / image.image.width
    scale_y = lineup.image_size / image.image.height
    points = torch.tensor([[[[x * scale_x, y * scale_y]]]], device=options.device, dtype=options.dtype)
    labels = torch.ones(1, 1, 1, dtype=torch.int64, device=options.device)
    return points, labels


# Meta's SAM2ImagePredictor.set_image and ._predict, without its own preprocessing (the pixels are
# given) and without upsampling the masks to the image size (the other implementations return
# low-resolution logits), so that the three do the same work.


def original_image_features(predictor, pixel_values: torch.Tensor) -> dict:
    model = predictor.model
    backbone_out = model.forward_image(pixel_values)
    _, vision_feats, _, _ = model._prepare_backbone_features(backbone_out)
    vision_feats[-1] = vision_feats[-1] + model.no_mem_embed
    feature_sizes = predictor._bb_feat_sizes
    feats = [
        feat.permute(1, 2, 0).view(1, -1, *size) for feat, size in zip(vision_feats[::-1], feature_sizes[::-1])
    ][::-1]
    return {"image_embed": feats[-1], "high_res_feats": feats[:-1]}


def original_prompt_and_decoder(predictor, features: dict, points: torch.Tensor, labels: torch.Tensor):
    model = predictor.model
    sparse, dense = model.sam_prompt_encoder(points=(points, labels.to(torch.int32)), boxes=None, masks=None)
    return model.sam_mask_decoder(
        image_embeddings=features["image_embed"],
        image_pe=model.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=True,
        repeat_image=False,
        high_res_features=features["high_res_feats"],
    )
