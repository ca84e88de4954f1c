"""EdgeTamImageProcessor / EdgeTamProcessor: original numerics, input formats, validation, save / load."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from edgetam_hf.image_processing import EdgeTamImageProcessor
from edgetam_hf.numerics import LAYER_ABSOLUTE, float32_tolerance
from edgetam_hf.processing import EdgeTamProcessor

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def original_pixels(unit_rgb_chw: torch.Tensor) -> torch.Tensor:
    """SAM2Transforms after ToTensor: antialiased bilinear resize of the float image, then normalise."""
    resized = F.interpolate(unit_rgb_chw[None], size=[1024, 1024], mode="bilinear", align_corners=False, antialias=True)
    return (resized[0] - MEAN) / STD


def original_coords(pixel_xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """SAM2Transforms.transform_coords(normalize=True): x / w, y / h, then * 1024, in float32."""
    coords = pixel_xy.clone().float()
    coords[..., 0] = coords[..., 0] / width
    coords[..., 1] = coords[..., 1] / height
    return coords * 1024


@pytest.fixture(scope="module")
def processor() -> EdgeTamProcessor:
    return EdgeTamProcessor()


@pytest.fixture(scope="module")
def rgb_image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- fixture parity
@pytest.fixture(scope="module")
def oracle(fixtures_dir):
    from safetensors.torch import load_file

    run_dir = fixtures_dir / "original_seed0"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return manifest, load_file(str(run_dir / "oracle.safetensors"))


def test_pixel_values_follow_the_original_recipe(oracle, processor):
    # The fixture holds only a digest of the original's pixel values, which other kernels round
    # differently; the recipe's ops run here instead, and the parity tests check the logits.
    _, tensors = oracle
    image = tensors["input/image_uint8"].numpy()
    expected = original_pixels(torch.from_numpy(image).permute(2, 0, 1).float().div(255))
    for as_given in (image, Image.fromarray(image), torch.from_numpy(image).permute(2, 0, 1)):
        encoding = processor(images=as_given)
        assert encoding["pixel_values"].shape == (1, 3, 1024, 1024)
        assert torch.equal(encoding["pixel_values"][0], expected)  # the same ops on the same tensor
        assert encoding["original_sizes"].tolist() == [[480, 640]]


def test_prompt_coordinates_match_original_transform(oracle, processor):
    manifest, tensors = oracle
    height, width = manifest["inputs"]["image"]["shape"][:2]
    for case in manifest["image"]["cases"]:
        prompt, inputs = case["prompt"], case["inputs"]
        boxes = prompt["boxes"] or ([prompt["box"]] if prompt["box"] else None)
        encoding = processor(
            original_sizes=[[height, width]],
            input_points=[[prompt["points"]]] if prompt["points"] else None,
            input_labels=[[prompt["labels"]]] if prompt["points"] else None,
            input_boxes=[boxes] if boxes else None,
        )
        if "point_coords" in inputs:
            expected = original_coords(tensors[inputs["point_coords"]["key"]], height, width)
            assert torch.equal(encoding["input_points"][0, 0], expected), case["name"]
            assert encoding["input_labels"][0, 0].tolist() == prompt["labels"]
        if "box" in inputs:
            # transform_boxes: each box as two corner points through transform_coords
            corners = tensors[inputs["box"]["key"]].reshape(-1, 2, 2)
            expected = original_coords(corners, height, width).reshape(-1, 4)
            assert torch.equal(encoding["input_boxes"][0], expected), case["name"]


def test_post_process_masks_match_original(oracle, processor):
    manifest, tensors = oracle
    for case in manifest["image"]["cases"]:
        outputs = case["outputs"]
        low_res = tensors[outputs["low_res_raw"]["key"]]  # (num_objects, num_masks, 256, 256)
        logits = processor.post_process_masks([low_res], [[480, 640]], binarize=False)[0]
        masks = processor.post_process_masks(low_res[None], torch.tensor([[480, 640]]))[0]
        assert torch.equal(masks, logits > 0), case["name"]
        bits = tensors[outputs["image_res"]["bits"]["key"]].numpy()
        expected = np.unpackbits(bits, axis=-1, count=480 * 640).reshape(masks.shape).astype(bool)
        # A pixel whose logit is within the upsampling's float32 rounding of 0 may go either way.
        decided = (logits.abs() > float32_tolerance(low_res, LAYER_ABSOLUTE)).numpy()
        assert np.array_equal(masks.numpy()[decided], expected[decided]), case["name"]


def test_clamped_logits_match_original(oracle, processor):
    _, tensors = oracle
    raw = tensors["img_points_posneg/low_res_raw"]
    assert raw.abs().max() > 32
    assert torch.equal(processor.clamp_mask_logits(raw), tensors["img_points_posneg/low_res_clamped"])
    # the mask prompt of img_mask_refine is the best clamped logits of img_point_multimask
    best = tensors["img_point_multimask/iou"][0].argmax()
    mask_prompt = processor.clamp_mask_logits(tensors["img_point_multimask/low_res_raw"][0, best])
    assert torch.equal(mask_prompt[None], tensors["img_mask_refine/in_mask_input"])
    encoding = processor(
        original_sizes=[[480, 640]], input_points=[[[[203.6, 128.8]]]], input_masks=mask_prompt[None, None]
    )
    assert torch.equal(encoding["input_masks"], mask_prompt[None, None])


# ----------------------------------------------------------------------------- image inputs
def test_rgb_inputs_of_every_kind_agree(processor, rgb_image):
    expected = original_pixels(torch.from_numpy(rgb_image).permute(2, 0, 1).float().div(255))
    chw = torch.from_numpy(rgb_image).permute(2, 0, 1)
    variants = {
        "numpy uint8 HWC": rgb_image,
        "numpy float HWC": rgb_image.astype(np.float32) / 255,
        "numpy uint8 CHW": np.ascontiguousarray(rgb_image.transpose(2, 0, 1)),
        "PIL": Image.fromarray(rgb_image),
        "tensor CHW": chw,
        "tensor HWC": torch.from_numpy(rgb_image),
        "tensor float CHW": chw.float() / 255,
    }
    for name, image in variants.items():
        pixel_values = processor(images=image)["pixel_values"]
        assert pixel_values.dtype == torch.float32
        assert torch.equal(pixel_values[0], expected), name


def test_grayscale_and_rgba_become_rgb(processor, rgb_image):
    gray = rgb_image[..., 0]
    gray_as_rgb = processor(images=np.repeat(gray[..., None], 3, axis=-1))["pixel_values"]
    for image in (gray, gray[..., None], Image.fromarray(gray), torch.from_numpy(gray)[None]):
        assert torch.equal(processor(images=image)["pixel_values"], gray_as_rgb)
    rgba = np.concatenate([rgb_image, np.full_like(rgb_image[..., :1], 7)], axis=-1)
    rgb = processor(images=rgb_image)["pixel_values"]
    for image in (rgba, Image.fromarray(rgba, mode="RGBA"), torch.from_numpy(rgba).permute(2, 0, 1)):
        assert torch.equal(processor(images=image)["pixel_values"], rgb)


def test_explicit_channel_layout_and_4d_batch(processor, rgb_image):
    # (3, 24, 3) is ambiguous: the numpy default reads it channels-last
    ambiguous = rgb_image[:3, :24, :]
    channels_last = processor(images=ambiguous)["original_sizes"]
    channels_first = processor(images=ambiguous, input_data_format="channels_first")["original_sizes"]
    assert channels_last.tolist() == [[3, 24]] and channels_first.tolist() == [[24, 3]]
    batch = np.stack([rgb_image, rgb_image[::-1]])
    from_array = processor(images=batch)["pixel_values"]
    from_list = processor(images=[rgb_image, rgb_image[::-1]])["pixel_values"]
    assert from_array.shape == (2, 3, 1024, 1024) and torch.equal(from_array, from_list)


def test_image_already_at_model_size_is_not_resampled():
    image = np.random.default_rng(1).integers(0, 256, size=(1024, 1024, 3), dtype=np.uint8)
    pixel_values = EdgeTamImageProcessor()(image)["pixel_values"][0]
    unit = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
    assert torch.equal(pixel_values, (unit - MEAN) / STD)


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((5,), np.uint8), "images: each image must have 2"),
        (np.zeros((1, 2, 3, 4, 3), np.uint8), "images: each image must have 2"),
        (np.zeros((8, 8, 2), np.uint8), r"images: expected 1 \(grayscale\), 3 \(RGB\) or 4 \(RGBA\)"),
        (torch.zeros(5, 8, 8, dtype=torch.uint8), r"images: expected 1 \(grayscale\)"),
        (np.full((8, 8, 3), 2.0, np.float32), r"images: float images must hold finite values in \[0, 1\]"),
        (np.zeros((8, 8, 3), np.int32), "images must be uint8"),
        (np.zeros((0, 8, 3), np.uint8), "images: an image has zero height or width"),
        ([], "images is an empty list"),
        ("photo.jpg", "images must be PIL images, numpy arrays or torch tensors"),
    ],
)
def test_bad_images_are_rejected(processor, images, match):
    with pytest.raises(ValueError, match=match):
        processor(images=images)


# ----------------------------------------------------------------------------- prompts
def test_batch_pads_objects_and_points_with_label_minus_one(processor):
    images = [np.zeros((40, 60, 3), np.uint8), np.zeros((50, 30, 3), np.uint8)]
    points = [
        [[[10.0, 20.0]], [[1.0, 2.0], [3.0, 4.0], [60.0, 40.0]]],  # image 0: 2 objects, 1 and 3 points
        [[[15.0, 25.0], [0.0, 50.0]]],  # image 1: 1 object, 2 points
    ]
    labels = [[[1], [1, 0, 1]], [[0, 1]]]
    encoding = processor(images=images, input_points=points, input_labels=labels)
    assert encoding["original_sizes"].tolist() == [[40, 60], [50, 30]]
    assert encoding["input_points"].shape == (2, 2, 3, 2) and encoding["input_points"].dtype == torch.float32
    assert encoding["input_labels"].dtype == torch.int64
    assert encoding["input_labels"].tolist() == [[[1, -1, -1], [1, 0, 1]], [[0, 1, -1], [-1, -1, -1]]]
    expected_0 = original_coords(torch.tensor(points[0][1]), 40, 60)
    assert torch.equal(encoding["input_points"][0, 1], expected_0)
    expected_1 = original_coords(torch.tensor(points[1][0]), 50, 30)
    assert torch.equal(encoding["input_points"][1, 0, :2], expected_1)
    padded = encoding["input_labels"] == -1
    assert bool((encoding["input_points"][padded] == processor.point_pad_value).all())


def test_sam2_style_padded_points_and_default_labels(processor):
    # Sam2Processor users pre-pad with point_pad_value (points and labels); those become label -1
    points = torch.tensor([[[[8.0, 4.0], [-10.0, -10.0]]]])
    encoding = processor(original_sizes=[[16, 16]], input_points=points, input_labels=[[[1, -10]]])
    assert encoding["input_labels"].tolist() == [[[1, -1]]]
    assert encoding["input_points"][0, 0].tolist() == [[512.0, 256.0], [-10.0, -10.0]]
    assert processor(original_sizes=[[16, 16]], input_points=points[..., :1, :])["input_labels"].tolist() == [[[1]]]


def test_boxes_with_points_and_box_only_objects(processor):
    boxes = [[[0.0, 0.0, 30.0, 20.0], [5.0, 5.0, 10.0, 10.0]]]
    encoding = processor(original_sizes=[[20, 30]], input_points=[[[[15.0, 10.0]], []]], input_boxes=boxes)
    assert encoding["input_boxes"].shape == (1, 2, 4)
    expected = original_coords(torch.tensor(boxes[0]).reshape(-1, 2, 2), 20, 30).reshape(-1, 4)
    assert torch.equal(encoding["input_boxes"][0], expected)
    assert encoding["input_labels"].tolist() == [[[1], [-1]]]
    box_only = processor(original_sizes=[[20, 30]], input_boxes=boxes)
    assert set(box_only) == {"original_sizes", "input_boxes"}


def test_numpy_outputs(processor, rgb_image):
    encoding = processor(images=rgb_image, input_points=[[[[1.0, 1.0]]]], return_tensors="np")
    assert isinstance(encoding["pixel_values"], np.ndarray) and encoding["input_labels"].dtype == np.int64


SIZES = [[20, 30]]
GOOD_POINTS = [[[[15.0, 10.0]]]]


@pytest.mark.parametrize(
    "prompts, match",
    [
        ({"input_points": [[[15.0, 10.0]]]}, r"input_points must be nested as \[image\]\[object\]\[point\]\[x, y\]"),
        ({"input_points": [[[[15.0, 10.0, 1.0]]]]}, r"input_points\[0\]\[0\]\[0\] has 3 values, not 2"),
        ({"input_points": [[[["a", 1.0]]]]}, "input_points must be nested as .* not a number"),
        ({"input_points": GOOD_POINTS, "input_labels": [[1]]}, r"input_labels must be nested as \[image\]\[object\]"),
        ({"input_points": GOOD_POINTS, "input_labels": [[[1, 0]]]}, r"input_labels\[0\]\[0\] has 2 labels but"),
        ({"input_points": GOOD_POINTS, "input_labels": [[[1], [1]]]}, r"input_labels\[0\] has 2 objects"),
        ({"input_points": GOOD_POINTS, "input_labels": [[[5]]]}, r"input_labels\[0\]\[0\]\[0\] is 5"),
        ({"input_labels": [[[1]]]}, "input_labels were given without input_points"),
        ({"input_boxes": [[[1.0, 2.0, 3.0]]]}, r"input_boxes\[0\]\[0\] has 3 values, not 4"),
        ({"input_boxes": [[1.0, 2.0, 3.0, 4.0]]}, r"input_boxes must be nested as \[image\]\[box\]"),
        ({"input_boxes": [[[10.0, 2.0, 5.0, 4.0]]]}, "input_boxes.* x1 >= x0 and y1 >= y0"),
        ({"input_boxes": [[[1.0, 8.0, 5.0, 4.0]]]}, "input_boxes.* x1 >= x0 and y1 >= y0"),
        ({"input_boxes": [[[1.0, 2.0, 31.0, 4.0]]]}, r"input_boxes.* lies outside the image"),
        ({"input_boxes": [[[1.0, float("nan"), 3.0, 4.0]]]}, "input_boxes.* non-finite"),
        ({"input_points": [[[[31.0, 10.0]]]]}, r"input_points\[0\]\[0\]\[0\] = .* lies outside the image"),
        ({"input_points": [[[[5.0, -0.5]]]]}, r"input_points\[0\]\[0\]\[0\] = .* lies outside the image"),
        ({"input_points": [[[[float("inf"), 1.0]]]]}, r"input_points\[0\]\[0\]\[0\] holds a non-finite"),
        ({"input_points": [[[[float("nan"), 1.0]]]]}, r"input_points\[0\]\[0\]\[0\] holds a non-finite"),
        ({"input_points": [[]]}, r"input_points\[0\] is empty"),
        ({"input_points": [[[[1.0, 1.0]], []]]}, r"input_points\[0\]\[1\] has no points and the object has no box"),
        ({"input_points": [[[[-10.0, -10.0]]]]}, r"input_points\[0\] holds only padding points"),
        ({"input_boxes": [[]]}, r"input_boxes\[0\] is empty"),
        ({"input_points": GOOD_POINTS * 2}, "input_points holds prompts for 2 images but there are 1 images"),
        ({"input_boxes": [[[1.0, 1.0, 2.0, 2.0]]] * 2}, "input_boxes holds prompts for 2 images"),
        (
            {"input_points": GOOD_POINTS, "input_boxes": [[[1.0, 1.0, 2.0, 2.0]] * 2]},
            r"input_points\[0\] has 1 objects but input_boxes\[0\] has 2 boxes",
        ),
        ({"input_points": GOOD_POINTS, "input_masks": torch.zeros(1, 256, 256)}, r"input_masks must have shape"),
        ({"input_points": GOOD_POINTS, "input_masks": torch.zeros(1, 1, 128, 128)}, r"input_masks must have shape"),
        ({"input_points": GOOD_POINTS, "input_masks": torch.zeros(2, 1, 256, 256)}, r"input_masks must have shape"),
        ({"input_points": GOOD_POINTS, "input_masks": torch.zeros(1, 2, 256, 256)}, "input_masks has 2 objects"),
        ({"input_masks": torch.full((1, 1, 256, 256), float("nan"))}, "input_masks holds non-finite"),
        ({"input_masks": [np.zeros((1, 256, 256)), np.zeros((2, 256, 256))]}, "input_masks: the per-image masks"),
    ],
)
def test_bad_prompts_are_rejected(processor, prompts, match):
    with pytest.raises(ValueError, match=match):
        processor(original_sizes=SIZES, **prompts)


def test_boxes_are_not_padded_across_images(processor):
    boxes = [[[1.0, 1.0, 2.0, 2.0]], [[1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0]]]
    with pytest.raises(ValueError, match="input_boxes must hold the same number of boxes for every image"):
        processor(original_sizes=SIZES * 2, input_boxes=boxes)


def test_sizes_are_required(processor):
    with pytest.raises(ValueError, match="either images or original_sizes"):
        processor(input_points=GOOD_POINTS)
    with pytest.raises(ValueError, match=r"original_sizes\[0\] must hold two positive integers"):
        processor(original_sizes=[[0, 5]], input_points=GOOD_POINTS)
    with pytest.raises(ValueError, match="original_sizes disagrees with the sizes of images"):
        processor(images=np.zeros((20, 31, 3), np.uint8), original_sizes=SIZES)


# ----------------------------------------------------------------------------- masks out
def test_post_process_masks_is_plain_bilinear_upsampling(processor):
    logits = torch.randn(2, 3, 1, 256, 256) * 5  # (batch, num_objects, num_masks, 256, 256)
    sizes = [[37, 53], [300, 200]]
    results = processor.post_process_masks(logits, torch.tensor(sizes), binarize=False)
    binary = processor.post_process_masks(list(logits.numpy()), sizes, mask_threshold=1.0)
    for index, (height, width) in enumerate(sizes):
        expected = F.interpolate(logits[index], (height, width), mode="bilinear", align_corners=False)
        assert results[index].shape == (3, 1, height, width) and torch.equal(results[index], expected)
        assert binary[index].dtype == torch.bool and torch.equal(binary[index], expected > 1.0)


def test_post_process_masks_refuses_a_mismatch_and_a_wrong_type(processor):
    logits = torch.zeros(1, 1, 1, 256, 256)
    with pytest.raises(ValueError, match="masks holds 1 images but original_sizes holds 2"):
        processor.post_process_masks(logits, [[10, 10], [10, 10]])
    with pytest.raises(TypeError, match=r"masks\[0\]"):  # as transformers' Sam2 processor
        processor.post_process_masks([[1, 0], [0, 1]], [[10, 10]])


def test_post_process_masks_fills_small_holes_and_removes_small_sprinkles(processor):
    logits = torch.full((1, 1, 16, 16), -5.0)
    logits[0, 0, 2:10, 2:10] = 5.0
    logits[0, 0, 5, 5] = -3.0  # a one-pixel hole in the object
    logits[0, 0, 14, 14] = 4.0  # a one-pixel sprinkle
    cleaned = processor.post_process_masks([logits], [[16, 16]], max_hole_area=2, max_sprinkle_area=2, binarize=False)[0]
    assert cleaned[0, 0, 5, 5] == 10.0 and cleaned[0, 0, 14, 14] == -10.0
    unchanged = cleaned != 10.0
    unchanged[0, 0, 14, 14] = False
    assert torch.equal(cleaned[unchanged], logits[unchanged])


def test_post_process_masks_non_overlapping_keeps_the_highest_object(processor):
    logits = torch.full((2, 1, 8, 8), -5.0)
    logits[0, 0, :, :4], logits[1, 0, :, 2:] = 5.0, 6.0  # overlap on columns 2 and 3
    masks = processor.post_process_masks([logits], [[8, 8]], apply_non_overlapping_constraints=True)[0]
    assert not bool((masks[0] & masks[1]).any())
    assert masks[0, 0, :, :2].all() and masks[1, 0, :, 2:].all()


# ----------------------------------------------------------------------------- save / load
def test_processor_save_load_round_trip(tmp_path, rgb_image):
    processor = EdgeTamProcessor(EdgeTamImageProcessor(image_mean=[0.5, 0.5, 0.5]), point_pad_value=-20)
    processor.save_pretrained(tmp_path)
    reloaded = EdgeTamProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded.image_processor, EdgeTamImageProcessor)
    assert reloaded.to_dict() == processor.to_dict()  # auto_map included (docs/auto_classes.md)
    assert reloaded.point_pad_value == -20 and reloaded.image_processor.image_mean == [0.5, 0.5, 0.5]
    assert reloaded.model_input_names == ["pixel_values", "original_sizes"]
    prompts = {"images": rgb_image, "input_points": [[[[3.0, 4.0]]]]}
    for key, value in processor(**prompts).items():
        assert torch.equal(reloaded(**prompts)[key], value), key


def test_image_processor_save_load_round_trip(tmp_path):
    image_processor = EdgeTamImageProcessor(mask_size={"height": 128, "width": 128})
    image_processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "preprocessor_config.json").read_text())["image_processor_type"] == (
        "EdgeTamImageProcessor"
    )
    assert EdgeTamImageProcessor.from_pretrained(tmp_path).to_dict() == image_processor.to_dict()


def test_loads_transformers_sam2_processor_config(tmp_path):
    # what transformers' Sam2Processor(Sam2ImageProcessor()).save_pretrained writes
    sam2_image_processor = {
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
        "image_processor_type": "Sam2ImageProcessor", "mask_size": {"height": 256, "width": 256},
        "resample": 2, "rescale_factor": 0.00392156862745098, "size": {"height": 1024, "width": 1024},
    }  # fmt: skip
    config = {"image_processor": sam2_image_processor, "point_pad_value": -10, "processor_class": "Sam2Processor"}
    (tmp_path / "processor_config.json").write_text(json.dumps({**config, "target_size": 1024}))
    assert EdgeTamProcessor.from_pretrained(tmp_path).to_dict() == EdgeTamProcessor().to_dict()
    with pytest.raises(ValueError, match="do_normalize=False is not supported"):
        EdgeTamImageProcessor.from_dict({**sam2_image_processor, "do_normalize": False})
