"""pipeline("mask-generation") on our EdgeTAM, and the Auto-class registration.

Tiers: the default tests use a tiny random model and small synthetic images; the fixture tests
(EDGETAM_FIXTURES, plus the sample photos of EDGETAM_MEDIA or ../shared/media) run the released
architecture with the reference random weights and compare with transformers' own pipeline on
its built-in EdgeTamModel, fed the same weights, pixels and point grid.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForMaskGeneration,
    AutoProcessor,
    pipeline,
)

from edgetam_hf.auto_registration import register_with_auto_classes
from edgetam_hf import EdgeTamConfig, EdgeTamImageProcessor, EdgeTamModel, EdgeTamProcessor, EdgeTamVideoConfig
from edgetam_hf import host_memory, mask_generation, masks_and_boxes
from edgetam_hf.weights import load_original_state_dict, read_original_checkpoint
from _image_tiny import TINY_IMAGE_SIZE, tiny_config, tiny_image_model
from _tolerance import assert_same_logits
from _reference import require_transformers_edgetam

# Random weights predict IoUs of ~0.3-0.55 and noisy masks: the original's filters (0.8, 0.95)
# would keep nothing, so the tests lower them.
NO_FILTERS = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """On a shared, loaded machine two spinning OpenMP threads slow these small models many times over."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_image_processor() -> EdgeTamImageProcessor:
    return EdgeTamImageProcessor(
        size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}, mask_size={"height": 64, "width": 64}
    )


@pytest.fixture(scope="module")
def tiny_model() -> EdgeTamModel:
    return tiny_image_model()


@pytest.fixture(scope="module")
def tiny_generator(tiny_model):
    return pipeline("mask-generation", model=tiny_model, image_processor=tiny_image_processor())


def scene(width: int = 96, height: int = 64) -> Image.Image:
    """A small RGB image with a few flat shapes."""
    image = Image.new("RGB", (width, height), (40, 60, 90))
    pixels = image.load()
    for y in range(height // 4, height // 2):
        for x in range(width // 5, width // 2):
            pixels[x, y] = (220, 60, 50)
    for y in range(height // 2, height - 4):
        for x in range(width // 2, width - 6):
            pixels[x, y] = (50, 90, 220)
    return image


# ------------------------------------------------------------------------------ Auto classes


def test_auto_classes_find_our_classes_by_our_model_types():
    assert type(AutoConfig.for_model("edgetam_hf")) is EdgeTamConfig
    assert type(AutoConfig.for_model("edgetam_hf_video")) is EdgeTamVideoConfig
    config = tiny_config()
    assert type(AutoModel.from_config(config)) is EdgeTamModel
    assert type(AutoModelForMaskGeneration.from_config(config)) is EdgeTamModel
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_MAPPING
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    from edgetam_hf.modeling_video import EdgeTamVideoModel
    from edgetam_hf.video_processing import EdgeTamVideoProcessor

    assert MODEL_MAPPING[EdgeTamVideoConfig] is EdgeTamVideoModel
    for config_class in (EdgeTamConfig, EdgeTamVideoConfig):
        assert set(IMAGE_PROCESSOR_MAPPING[config_class].values()) == {EdgeTamImageProcessor}
    assert PROCESSOR_MAPPING[EdgeTamConfig] is EdgeTamProcessor
    assert PROCESSOR_MAPPING[EdgeTamVideoConfig] is EdgeTamVideoProcessor


@pytest.mark.parity
def test_transformers_own_models_keep_their_classes():
    """Our classes share names with transformers' (EdgeTamConfig, EdgeTamModel); the registries
    must still map transformers' config classes and model types to transformers' classes."""
    require_transformers_edgetam()
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASK_GENERATION_MAPPING, MODEL_MAPPING
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    assert CONFIG_MAPPING["edgetam"] is transformers.EdgeTamConfig
    assert CONFIG_MAPPING["edgetam_video"] is transformers.EdgeTamVideoConfig
    assert CONFIG_MAPPING["sam2"] is transformers.Sam2Config
    assert MODEL_MAPPING[transformers.EdgeTamConfig] is transformers.EdgeTamModel
    assert MODEL_MAPPING[transformers.EdgeTamVideoConfig] is transformers.EdgeTamVideoModel
    assert MODEL_MAPPING[transformers.Sam2Config] is transformers.Sam2Model
    assert MODEL_FOR_MASK_GENERATION_MAPPING[transformers.EdgeTamConfig] is transformers.EdgeTamModel
    assert MODEL_FOR_MASK_GENERATION_MAPPING[transformers.Sam2Config] is transformers.Sam2Model
    assert IMAGE_PROCESSOR_MAPPING[transformers.EdgeTamConfig] == {"torchvision": transformers.Sam2ImageProcessor}
    assert PROCESSOR_MAPPING[transformers.EdgeTamConfig] is transformers.Sam2Processor
    # nothing transformers owns was re-registered: no transformers class or model type is an added key
    assert not set(CONFIG_MAPPING._extra_content) & set(CONFIG_MAPPING._mapping)
    for mapping in (MODEL_MAPPING, MODEL_FOR_MASK_GENERATION_MAPPING, IMAGE_PROCESSOR_MAPPING, PROCESSOR_MAPPING):
        for config_class in mapping._extra_content:
            assert not config_class.__module__.startswith("transformers."), config_class


def test_registration_is_idempotent():
    register_with_auto_classes()
    register_with_auto_classes()
    assert type(AutoModel.from_config(tiny_config())) is EdgeTamModel


@pytest.fixture(scope="module")
def saved_folder(tiny_model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_edgetam")
    tiny_model.save_pretrained(folder)
    EdgeTamProcessor(tiny_image_processor()).save_pretrained(folder)
    return folder


def test_saved_folder_carries_auto_map_and_the_classes_file(saved_folder):
    from edgetam_hf.remote_code import CLASSES_FILE, auto_map

    config = json.loads((saved_folder / "config.json").read_text())
    assert config["model_type"] == "edgetam_hf"
    assert config["auto_map"] == auto_map("edgetam_hf")
    processor_config = json.loads((saved_folder / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "edgetam_hf_classes.EdgeTamProcessor"
    assert processor_config["image_processor"]["auto_map"]["AutoImageProcessor"] == "edgetam_hf_classes.EdgeTamImageProcessor"
    assert [path.name for path in saved_folder.glob("*.py")] == [CLASSES_FILE]


def test_auto_config_reads_the_released_config(tmp_path):
    EdgeTamConfig().save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path).to_dict()
    expected = EdgeTamConfig().to_dict()
    for config in (loaded, expected):  # bookkeeping that saving adds
        config.pop("_name_or_path", None)
        config.pop("auto_map", None)
    assert loaded == expected


def test_auto_classes_and_pipeline_load_the_saved_folder(saved_folder, tiny_model):
    model = AutoModelForMaskGeneration.from_pretrained(saved_folder)
    assert type(model) is EdgeTamModel
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert type(AutoProcessor.from_pretrained(saved_folder)) is EdgeTamProcessor
    image_processor = AutoImageProcessor.from_pretrained(saved_folder)
    assert type(image_processor) is EdgeTamImageProcessor and image_processor.size["height"] == TINY_IMAGE_SIZE

    generator = pipeline("mask-generation", model=str(saved_folder))
    assert type(generator.model) is EdgeTamModel and type(generator.image_processor) is EdgeTamImageProcessor
    outputs = generator(scene(), points_per_crop=2, **NO_FILTERS)
    assert len(outputs["masks"]) > 0


# ------------------------------------------------------------------------------ pipeline, tiny model


def test_pipeline_returns_image_size_masks_best_first(tiny_generator):
    image = scene()
    outputs = tiny_generator(image, points_per_crop=4, **NO_FILTERS)
    masks, scores = outputs["masks"], outputs["scores"]
    assert len(masks) == len(scores) > 0
    for mask in masks:
        assert mask.dtype == torch.bool and tuple(mask.shape) == (image.height, image.width)
    assert torch.all(scores[:-1] >= scores[1:])


class _CallRecorder:
    """Wraps a bound method and records the arguments and result of each call."""

    def __init__(self, method):
        self.method, self.calls, self.results = method, [], []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        self.results.append(self.method(*args, **kwargs))
        return self.results[-1]


def test_points_per_batch_is_honoured(tiny_generator, monkeypatch):
    forward = _CallRecorder(tiny_generator.model.forward)
    monkeypatch.setattr(tiny_generator.model, "forward", forward)
    batched = tiny_generator(scene(), points_per_crop=4, points_per_batch=5, **NO_FILTERS)
    assert [call[1]["input_points"].shape[1] for call in forward.calls] == [5, 5, 5, 1]

    forward.calls.clear()
    whole = tiny_generator(scene(), points_per_crop=4, points_per_batch=16, **NO_FILTERS)
    assert [call[1]["input_points"].shape[1] for call in forward.calls] == [16]
    assert len(batched["masks"]) == len(whole["masks"])
    assert_same_logits(batched["scores"], whole["scores"])


def test_pred_iou_thresh_is_honoured(tiny_generator, monkeypatch):
    filter_masks = _CallRecorder(tiny_generator.image_processor.filter_masks)
    monkeypatch.setattr(tiny_generator.image_processor, "filter_masks", filter_masks)
    everything = tiny_generator(scene(), points_per_crop=4, **NO_FILTERS)
    threshold = float(everything["scores"].median())
    kept = tiny_generator(scene(), points_per_crop=4, pred_iou_thresh=threshold, stability_score_thresh=0.0)
    assert filter_masks.calls[-1][0][4] == threshold  # the pipeline passes it positionally
    assert 0 < len(kept["masks"]) < len(everything["masks"])
    assert torch.all(kept["scores"] > threshold)
    assert len(tiny_generator(scene(), points_per_crop=4, pred_iou_thresh=1.0, stability_score_thresh=0.0)["masks"]) == 0


def test_stability_score_thresh_is_honoured(tiny_generator, monkeypatch):
    filter_masks = _CallRecorder(tiny_generator.image_processor.filter_masks)
    monkeypatch.setattr(tiny_generator.image_processor, "filter_masks", filter_masks)
    tiny_generator(scene(), points_per_crop=4, **NO_FILTERS)
    logits = filter_masks.calls[0][0][0].flatten(0, 1)
    stability = mask_generation.stability_scores(logits, 0.0, 1.0)
    threshold = float(stability.median())

    filter_masks.calls.clear()
    filter_masks.results.clear()
    tiny_generator(scene(), points_per_crop=4, pred_iou_thresh=0.0, stability_score_thresh=threshold)
    assert filter_masks.calls[0][0][5] == threshold  # the pipeline passes it positionally
    kept_rles = filter_masks.results[0][0]
    # one crop (the whole image), so no mask is cut by a crop edge: exactly the stable ones remain
    assert 0 < len(kept_rles) == int((stability >= threshold).sum()) < len(stability)


def test_filter_masks_stability_keeps_equality_like_the_original():
    """Stability 0.95 exactly passes a 0.95 threshold (the original's `>=`; transformers' `>`)."""
    logits = torch.full((1, 1, 10, 10), -5.0)
    logits[0, 0, :, :2] = 5.0  # 20 pixels above +1
    logits[0, 0, 0, 2] = 0.5  # 1 more pixel above -1: stability 20 / 21
    processor = EdgeTamImageProcessor()
    kept, _, _ = processor.filter_masks(logits, torch.tensor([[0.9]]), (10, 10), [0, 0, 10, 10], 0.5, 20 / 21, 0.0, 1.0)
    assert len(kept) == 1
    dropped, _, _ = processor.filter_masks(logits, torch.tensor([[0.9]]), (10, 10), [0, 0, 10, 10], 0.5, 0.96, 0.0, 1.0)
    assert len(dropped) == 0
    low_iou, _, _ = processor.filter_masks(logits, torch.tensor([[0.4]]), (10, 10), [0, 0, 10, 10], 0.5, 0.0, 0.0, 1.0)
    assert len(low_iou) == 0


def test_crops_n_layers_is_honoured(tiny_generator, monkeypatch):
    embeddings = _CallRecorder(tiny_generator.model.get_image_embeddings)
    monkeypatch.setattr(tiny_generator.model, "get_image_embeddings", embeddings)
    image = scene(160, 120)
    outputs = tiny_generator(image, points_per_crop=4, crops_n_layers=1, output_rle_mask=True, **NO_FILTERS)
    assert len(embeddings.calls) == 1 + 4  # the whole image, then 2x2 crops
    crop_boxes = {tuple(rle["crop_box"]) for rle in outputs["rle_mask"]}
    assert crop_boxes - {(0, 0, image.width, image.height)}, "no mask comes from a crop"
    for mask, rle in zip(outputs["masks"], outputs["rle_mask"], strict=True):
        assert isinstance(rle["counts"], list) and torch.equal(masks_and_boxes.rle_to_mask(rle), mask)
        x0, y0, x1, y1 = rle["crop_box"]
        assert not mask[:y0].any() and not mask[y1:].any() and not mask[:, :x0].any() and not mask[:, x1:].any()


def test_crop_boxes_follow_the_original():
    """1800x1200 with one crop layer: overlap int(512/1500 * 1200) = 409, crops of
    ceil((409 + 1800) / 2) x ceil((409 + 1200) / 2) = 1105 x 805, starting at 0 and 1105 - 409,
    805 - 409."""
    boxes, layers = mask_generation.generate_crop_boxes((1200, 1800), 1, 512 / 1500)
    assert boxes == [[0, 0, 1800, 1200], [0, 0, 1105, 805], [0, 396, 1105, 1200], [696, 0, 1800, 805], [696, 396, 1800, 1200]]
    assert layers == [0, 1, 1, 1, 1]


@pytest.mark.parity
def test_point_grid_spans_the_square_model_input_of_a_non_square_image():
    """The original scales x by 1024 / width and y by 1024 / height (SAM 2 resizes to a square);
    transformers' Sam2 helper scales both as for SAM's longest-side resize."""
    processor = EdgeTamImageProcessor()
    image = Image.new("RGB", (1800, 1200))
    boxes, points, crops, labels = processor.generate_crop_boxes(image, 1024, points_per_crop=4)
    assert tuple(points.shape) == (1, 16, 1, 2) and tuple(labels.shape) == (1, 16, 1) and labels.dtype == torch.int64
    grid = torch.tensor([128.0, 384.0, 640.0, 896.0])  # cell centres (i + 0.5) / 4 * 1024
    torch.testing.assert_close(points[0, :, 0, 0], grid.repeat(4), rtol=0, atol=1e-4)
    torch.testing.assert_close(points[0, :, 0, 1], grid.repeat_interleave(4), rtol=0, atol=1e-4)
    assert boxes.tolist() == [[0.0, 0.0, 1800.0, 1200.0]] and tuple(crops[0].shape) == (3, 1200, 1800)

    require_transformers_edgetam()
    from transformers import Sam2ImageProcessor

    _, their_points, _, _ = Sam2ImageProcessor().generate_crop_boxes(image, 1024, points_per_crop=4)
    assert their_points[0, :, 0, 1].max() < 683  # 1200 * 1024 / 1800: the bottom third has no point
    _, square_points, _, _ = Sam2ImageProcessor().generate_crop_boxes(Image.new("RGB", (600, 600)), 1024, points_per_crop=4)
    _, our_square_points, _, _ = processor.generate_crop_boxes(Image.new("RGB", (600, 600)), 1024, points_per_crop=4)
    torch.testing.assert_close(square_points, our_square_points, rtol=0, atol=1e-3)


def test_layers_with_different_point_counts_are_a_clear_error(tiny_generator):
    with pytest.raises(ValueError, match="crop_n_points_downscale_factor"):
        tiny_generator(scene(), points_per_crop=4, crops_n_layers=1, crop_n_points_downscale_factor=2)


def test_duplicate_removal_prefers_smaller_crops_across_crops():
    whole, crop = [0, 0, 100, 100], [0, 0, 60, 60]
    rles = [{"size": [100, 100], "counts": torch.tensor([10000]), "crop_box": box} for box in (whole, whole, crop)]
    boxes = torch.tensor([[10, 10, 40, 40], [12, 10, 40, 41], [10, 11, 40, 40]])
    scores = torch.tensor([0.9, 0.8, 0.5])
    kept = mask_generation.remove_duplicate_masks(rles, scores, boxes, 0.7, 0.7)
    assert kept.tolist() == [2]  # within the whole image 0 beats 1; across crops the smaller crop wins
    kept = mask_generation.remove_duplicate_masks(rles, scores, boxes, 1.0, 1.0)
    assert sorted(kept.tolist()) == [0, 1, 2]


def _reference_nms(boxes, scores, iou_threshold):
    """Greedy NMS written from its definition, for comparison: best score first (ties in input
    order), drop every box whose IoU with a kept box exceeds the threshold. The IoU is a float32
    number, as in torchvision's kernel, compared with the threshold as a double."""
    kept = []
    for index in sorted(range(len(scores)), key=lambda i: -float(scores[i])):
        if all(_float32_iou(boxes[index], boxes[k]) <= iou_threshold for k in kept):
            kept.append(index)
    return torch.tensor(kept, dtype=torch.int64)


def _float32_iou(box, other) -> float:
    (x0, y0, x1, y1), (u0, v0, u1, v1) = box.numpy(), other.numpy()  # float32 scalars
    area, other_area = (x1 - x0) * (y1 - y0), (u1 - u0) * (v1 - v0)
    intersection = max(np.float32(0), min(x1, u1) - max(x0, u0)) * max(np.float32(0), min(y1, v1) - max(y0, v0))
    return float(intersection / (area + other_area - intersection))


def test_non_maximum_suppression_matches_its_definition():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        corner = torch.randint(0, 50, (30, 2), generator=generator)
        boxes = torch.cat([corner, corner + torch.randint(1, 30, (30, 2), generator=generator)], dim=1).float()
        scores = torch.randint(0, 8, (30,), generator=generator).float() / 8  # ties keep input order
        for threshold in (0.3, 0.7):
            assert torch.equal(masks_and_boxes.non_maximum_suppression(boxes, scores, threshold), _reference_nms(boxes, scores, threshold))


def test_run_length_encoding_round_trips_in_coco_order():
    masks = torch.zeros(3, 2, 3, dtype=torch.bool)
    masks[0, :, 1] = True  # column-major: 0 0 | 1 1 | 0 0
    masks[1] = True
    rles = [masks_and_boxes.rle_with_list_counts(rle) for rle in masks_and_boxes.masks_to_rle(masks)]
    assert [rle["counts"] for rle in rles] == [[2, 2, 2], [0, 6], [6]]
    generator = torch.Generator().manual_seed(0)
    noisy = torch.rand(4, 7, 5, generator=generator) > 0.5
    for rle, mask in zip(masks_and_boxes.masks_to_rle(noisy), noisy, strict=True):
        assert torch.equal(masks_and_boxes.rle_to_mask(rle), mask)


# ------------------------------------------------------------------------------ unusual images


def test_one_pixel_image(tiny_generator):
    outputs = tiny_generator(Image.new("RGB", (1, 1), (10, 200, 30)), points_per_crop=2, **NO_FILTERS)
    assert all(tuple(mask.shape) == (1, 1) for mask in outputs["masks"])
    with pytest.raises(ValueError, match="too small for crops_n_layers"):
        tiny_generator(Image.new("RGB", (1, 1)), points_per_crop=2, crops_n_layers=1)


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_grayscale_and_rgba_images_are_segmented_as_rgb(tiny_generator, mode):
    image = scene().convert(mode)
    outputs = tiny_generator(image, points_per_crop=2, **NO_FILTERS)
    expected = tiny_generator(image.convert("RGB"), points_per_crop=2, **NO_FILTERS)
    assert len(outputs["masks"]) == len(expected["masks"]) > 0
    for mask, expected_mask in zip(outputs["masks"], expected["masks"], strict=True):
        assert torch.equal(mask, expected_mask)


def test_huge_image_masks_beyond_available_memory_are_a_clear_error(monkeypatch):
    """A 10000x10000 image: 64 points x 3 masks at image size are 72 GiB of float32. Past the memory
    available, post_process_masks refuses before allocating and says what to lower."""
    processor = EdgeTamImageProcessor()
    monkeypatch.setattr(host_memory, "available_memory_bytes", lambda device: 8 * 2**30)
    logits = torch.zeros(1, 64, 3, 256, 256)
    with pytest.raises(ValueError, match="points_per_batch"):
        processor.post_process_masks(logits, [(10000, 10000)], binarize=False)
    # one point at a time (3 masks, 1.1 GiB) fits in the same 8 GiB
    check = host_memory.check_room_for_upsampled_masks
    check(logits[0, :1], (10000, 10000))


def test_huge_image_crops_stay_uint8_views():
    """The crops of a PIL image are views of its uint8 pixels: a 10000x10000 photo is not held as
    float32 (1.2 GB) by generate_crop_boxes; preprocess converts each crop."""
    image = Image.new("RGB", (10000, 10000), (1, 2, 3))
    boxes, points, crops, _ = EdgeTamImageProcessor().generate_crop_boxes(image, 1024, crop_n_layers=1, points_per_crop=2)
    assert len(crops) == 5 and all(crop.dtype == torch.uint8 for crop in crops)
    assert crops[1].untyped_storage().data_ptr() == crops[0].untyped_storage().data_ptr()


# ------------------------------------------------------------------------------ reference weights, photos


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """The sample photos: EDGETAM_MEDIA, or the workplace's ../shared/media; skips when absent."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "media"
    path = Path(os.environ.get("EDGETAM_MEDIA", default))
    if not (path / "images" / "truck.jpg").is_file():
        pytest.skip(f"no sample media at {path} (set EDGETAM_MEDIA)")
    return path


@pytest.fixture(scope="module")
def reference_model(fixtures_dir) -> EdgeTamModel:
    model = EdgeTamModel(EdgeTamConfig()).eval()
    load_original_state_dict(model, read_original_checkpoint(fixtures_dir / "edgetam_random_seed0.pt"))
    return model


@pytest.fixture(scope="module")
def reference_generator(reference_model):
    return pipeline("mask-generation", model=reference_model, image_processor=EdgeTamImageProcessor())


def test_pipeline_segments_the_truck_photo(reference_generator, media_dir):
    image = Image.open(media_dir / "images" / "truck.jpg")
    outputs = reference_generator(image, points_per_crop=2, **NO_FILTERS)
    assert len(outputs["masks"]) > 0
    assert all(tuple(mask.shape) == (1200, 1800) for mask in outputs["masks"])


class _Sam2StepsOnOurInputs:
    """transformers' Sam2ImageProcessor for mask generation, fed our pixel_values and point grid.

    Everything the pipeline calls after the inputs (post_process_masks, filter_masks,
    post_process_for_mask_generation) is transformers'; `__call__` (pixels) and
    `generate_crop_boxes` (the point grid, whose frame transformers gets wrong for non-square
    images, see test_point_grid_spans_...) are ours: the same preprocessing on both sides.
    """

    def __new__(cls, ours: EdgeTamImageProcessor):
        from transformers import Sam2ImageProcessor

        class Sam2OnOurInputs(Sam2ImageProcessor):
            def __call__(self, images, **kwargs):
                return ours(images, **kwargs)

            def generate_crop_boxes(self, *args, **kwargs):
                return ours.generate_crop_boxes(*args, **kwargs)

        return Sam2OnOurInputs()


@pytest.fixture
def transformers_nms(monkeypatch):
    """transformers' Sam2 helpers call torchvision's batched_nms; where torchvision has no C
    operators (this workplace's wheel) a plain NMS written from its definition stands in."""
    import torchvision
    from transformers.models.sam2 import image_processing_sam2

    try:
        torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
    except RuntimeError:
        def batched_nms(boxes, scores, idxs, iou_threshold):
            assert bool((idxs == idxs[0]).all()) if len(idxs) else True
            return _reference_nms(boxes.float(), scores, iou_threshold)

        monkeypatch.setattr(image_processing_sam2, "batched_nms", batched_nms)


def transformers_model_with(state_dict):
    """transformers' built-in EdgeTamModel (RepViT-M1 trunk through timm) holding `state_dict`."""
    require_transformers_edgetam()
    from transformers import EdgeTamConfig as TransformersEdgeTamConfig
    from transformers import EdgeTamModel as TransformersEdgeTamModel
    from transformers.models.timm_wrapper import TimmWrapperConfig

    backbone = TimmWrapperConfig(
        architecture="repvit_m1", model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]}
    )
    model = TransformersEdgeTamModel(TransformersEdgeTamConfig(vision_config={"backbone_config": backbone.to_dict()}))
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def generate_with_nms_thresholds(generator, image, nms_thresholds, points_per_crop, crops_n_layers=0, **filters):
    """What `generator(image, ...)` does (ChunkPipeline.run_single), with the model run once and
    the duplicate removal run once per NMS threshold."""
    batches = generator.preprocess(image, points_per_crop=points_per_crop, crops_n_layers=crops_n_layers)
    outputs = [generator.forward(batch, **filters) for batch in batches]
    return [generator.postprocess([dict(output) for output in outputs], crops_nms_thresh=t) for t in nms_thresholds]


def assert_same_masks(ours: dict, theirs: dict, min_iou: float = 0.99):
    """Same count; a one-to-one matching where every pair has IoU >= min_iou and equal scores."""
    assert len(ours["masks"]) == len(theirs["masks"])
    if not ours["masks"]:
        return
    our_masks = torch.stack(ours["masks"]).flatten(1).float()
    their_masks = torch.stack(theirs["masks"]).flatten(1).float()
    intersections = our_masks @ their_masks.T
    unions = our_masks.sum(1)[:, None] + their_masks.sum(1)[None, :] - intersections
    ious = intersections / unions
    best_iou, match = ious.max(dim=1)
    assert sorted(match.tolist()) == list(range(len(match))), "the matching is not one-to-one"
    assert float(best_iou.min()) >= min_iou, best_iou
    assert_same_logits(ours["scores"], theirs["scores"][match])
    return best_iou, (ours["scores"] - theirs["scores"][match]).abs()


def test_pipeline_matches_transformers_pipeline_on_the_same_inputs(reference_model, media_dir, transformers_nms):
    """groceries.jpg, 4x4 points: before duplicate removal (NMS off) and after it (0.7, default)."""
    image = Image.open(media_dir / "images" / "groceries.jpg")
    ours = EdgeTamImageProcessor()
    their_generator = pipeline(
        "mask-generation", model=transformers_model_with(reference_model.state_dict()), image_processor=_Sam2StepsOnOurInputs(ours)
    )
    our_generator = pipeline("mask-generation", model=reference_model, image_processor=ours)
    filters = {"pred_iou_thresh": 0.5, "stability_score_thresh": 0.01}
    our_results = generate_with_nms_thresholds(our_generator, image, (1.0, 0.7), 4, **filters)
    their_results = generate_with_nms_thresholds(their_generator, image, (1.0, 0.7), 4, **filters)
    assert len(our_results[0]["masks"]) > 1
    for our_result, their_result in zip(our_results, their_results, strict=True):
        assert_same_masks(our_result, their_result)
