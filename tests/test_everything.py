"""`edgetam_hf.everything.generate_masks` (what `segment-everything` runs) gives the masks, scores and
boxes of transformers' `pipeline("mask-generation")` on our model, which it outruns by upsampling
only the candidates that pass the predicted-IoU filter."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from _image_tiny import TINY_IMAGE_SIZE, tiny_image_model
from _tolerance import assert_same_float32
from edgetam_hf.everything import generate_masks, num_decoder_batches
from edgetam_hf.image_processing import EdgeTamImageProcessor


@pytest.fixture(scope="module")
def model():
    return tiny_image_model()


def _processor() -> EdgeTamImageProcessor:
    return EdgeTamImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}, mask_size={"height": 32, "width": 32})


def _scene() -> Image.Image:
    pixels = np.full((64, 96, 3), (40, 60, 90), np.uint8)
    pixels[16:32, 19:48] = (220, 60, 50)
    pixels[32:60, 48:90] = (50, 90, 220)
    return Image.fromarray(pixels)


def _same_answer(ours: dict, theirs: dict) -> None:
    assert len(ours["masks"]) == len(theirs["masks"]) > 0
    assert_same_float32(ours["scores"], theirs["scores"])
    torch.testing.assert_close(ours["bounding_boxes"], theirs["bounding_boxes"], rtol=0, atol=1)  # pixels
    for our_mask, their_mask in zip(ours["masks"], theirs["masks"], strict=True):
        assert (our_mask != their_mask).float().mean() <= 1e-4


@pytest.mark.parametrize("crops_n_layers", [0, 1])
# stability filter (threshold, offset): off, and on
@pytest.mark.parametrize("stability", [(0.0, 1.0), (0.3, 1.0)])
def test_the_masks_of_the_pipeline_with_the_iou_filter_first(model, crops_n_layers, stability):
    image, side, batch = _scene(), 6, 10  # 36 points: batches of 10, 10, 10, 6
    settings = dict(points_per_batch=batch, stability_score_thresh=stability[0], stability_score_offset=stability[1],
                    crops_n_layers=crops_n_layers)
    generator = pipeline("mask-generation", model=model, image_processor=_processor())
    unfiltered = generator(image, points_per_crop=side, points_per_batch=batch, pred_iou_thresh=0.0, stability_score_thresh=0.0)["scores"]
    threshold = float(unfiltered.median())  # so that the filter keeps some candidates and drops others
    theirs = generator(image, points_per_crop=side, pred_iou_thresh=threshold, output_bboxes_mask=True, **settings)
    calls = []
    ours = generate_masks(model, _processor(), image, points_per_side=side, pred_iou_thresh=threshold,
                          on_batch=lambda: calls.append(1), **settings)
    _same_answer(ours, theirs)
    assert len(calls) == num_decoder_batches(side, batch, crops_n_layers) == (1 + 4 * crops_n_layers) * 4


def test_nothing_kept_is_an_empty_answer(model):
    ours = generate_masks(model, _processor(), _scene(), points_per_side=2, pred_iou_thresh=1e6)
    assert ours["masks"] == [] and ours["scores"].shape == (0,) and ours["bounding_boxes"].shape == (0, 4)
