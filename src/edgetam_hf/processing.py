"""EdgeTamProcessor: images and prompts -> model inputs, with the original's coordinate math.

The API is transformers' `Sam2Processor` (nested-list prompts, padding of points, `original_sizes`,
`post_process_masks`); the numbers are those of `SAM2ImagePredictor._prep_prompts`: a point (x, y)
in original-image pixels becomes `(x / width, y / height) * 1024` in float32, computed in that
order (`SAM2Transforms.transform_coords` with normalize_coords=True), and a box is its two corners.

Prompt conventions of the outputs (what the model must know):
  * `input_points` (batch, num_objects, num_points, 2) float32, (x, y) in 1024-space.
  * `input_labels` (batch, num_objects, num_points) int64: 1 positive click, 0 negative click,
    2 / 3 box corners given as points, -1 padding ("not a point" in the original's prompt encoder).
    Padded points keep the coordinates (point_pad_value, point_pad_value), unscaled, like Sam2Processor.
  * `input_boxes` (batch, num_objects, 4) float32, x0, y0, x1, y1 in 1024-space; object j of image i
    is `input_points[i, j]` together with `input_boxes[i, j]`. The original feeds a box as two
    points with labels 2 and 3 placed before the clicks.
  * `input_masks` (batch, num_objects, 256, 256) float32 low-resolution mask logits.
"""

import copy
import math

import numpy as np
import torch
from transformers.image_processing_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .conventions import LABEL_PADDING, PROMPT_LABELS
from .image_inputs import as_size_list, convert_tensors, resize_like_original
from .image_processing import EdgeTamImageProcessor
from .remote_code import WritesItsOwnAutoMap, processor_auto_map, write_classes_file

_POINTS_FORMAT = "[image][object][point][x, y]"
_LABELS_FORMAT = "[image][object][point]"
_BOXES_FORMAT = "[image][box][x0, y0, x1, y1]"


class EdgeTamProcessor(WritesItsOwnAutoMap, ProcessorMixin):
    """Wraps `EdgeTamImageProcessor` and turns point / box / mask prompts into model inputs.

    Ports the prompt preparation of `sam2.sam2_image_predictor.SAM2ImagePredictor` (`_prep_prompts`)
    with the call signature and padding conventions of transformers' `Sam2Processor`.
    """

    # Resolved by `_get_arguments_from_pretrained` below, not through transformers' auto mappings.
    image_processor_class = "EdgeTamImageProcessor"

    def __init__(
        self,
        image_processor: EdgeTamImageProcessor | None = None,
        target_size: int | None = None,
        point_pad_value: int = -10,
    ):
        """
        Args:
            image_processor: defaults to `EdgeTamImageProcessor()`.
            target_size: side of the model's input square, the scale of prompt coordinates;
                defaults to the image processor's `size["height"]` (1024).
            point_pad_value: marks padded points in `input_points` (as in Sam2Processor); a point
                whose label or both coordinates equal it is treated as padding.
        """
        image_processor = image_processor if image_processor is not None else EdgeTamImageProcessor()
        super().__init__(image_processor)
        self.target_size = int(target_size if target_size is not None else image_processor.size["height"])
        self.point_pad_value = point_pad_value

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, image_size: int | None = None, **kwargs):
        """transformers' loading; `image_size` sizes the processor for a model loaded with the
        same `image_size` (`EdgeTamModel.from_pretrained(path, image_size=512)`)."""
        processor = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        return processor if image_size is None else processor.for_image_size(image_size)

    def for_image_size(self, image_size: int) -> "EdgeTamProcessor":
        """A copy for a model of `image_size` input: images resized to it, prompts scaled to it,
        and low-resolution masks at a quarter of it, as the mask decoder gives them."""
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
            raise ValueError(f"image_size must be a positive int (the model's input side), got {image_size!r}")
        image_processor = copy.deepcopy(self.image_processor)
        image_processor.size = {"height": image_size, "width": image_size}
        image_processor.mask_size = {"height": image_size // 4, "width": image_size // 4}
        return type(self)(image_processor, target_size=image_size, point_pad_value=self.point_pad_value)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        # ProcessorMixin would look `image_processor_class` up in transformers' own registries, where
        # this class is not (and registering it there would be an import-time side effect).
        return [EdgeTamImageProcessor.from_pretrained(pretrained_model_name_or_path, **kwargs)]

    def to_dict(self) -> dict:
        # processor_config.json names the classes file written beside it (remote_code.py).
        return {**super().to_dict(), "auto_map": processor_auto_map(type(self).__name__)}

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        saved_files = super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        write_classes_file(save_directory)
        return saved_files

    @property
    def model_input_names(self) -> list[str]:
        return [*self.image_processor.model_input_names, "original_sizes"]

    def __call__(
        self,
        images=None,
        segmentation_maps=None,
        input_points=None,
        input_labels=None,
        input_boxes=None,
        input_masks=None,
        original_sizes=None,
        labels=None,
        **kwargs,
    ) -> BatchFeature:
        """Preprocess images and / or prompts.

        Args:
            images: see `EdgeTamImageProcessor.preprocess`; one image or a batch.
            segmentation_maps: refused: give ground-truth masks per object as `labels`.
            input_points: nested as [image][object][point][x, y] in original-image pixels
                (list, numpy array or tensor); objects and points are padded to the largest count.
            input_labels: nested as [image][object][point]; defaults to 1 (positive) for every point.
            input_boxes: nested as [image][box][x0, y0, x1, y1] in pixels, the same number per image;
                with points, box j belongs to object j.
            input_masks: low-resolution mask logits per object, (batch, num_objects, 256, 256) or a
                list of (num_objects, 256, 256) per image.
            original_sizes: (batch, 2) as (height, width), needed for prompts when `images` is None.
            labels: ground-truth masks for training, per image (num_objects, height, width) at the
                original image size (bool or {0, 1}), the same number of objects per image.
            kwargs: `return_tensors`: "pt" or "np"; None (the default) returns torch tensors as
                "pt" does. `device`: where the returned tensors go; the preprocessing itself runs on
                the CPU, as the original's does. Any other option goes to the image processor.
                As in transformers, options may also come grouped (`images_kwargs={...}`,
                `common_kwargs={...}`; an empty `text_kwargs`).

        Returns:
            `BatchFeature` with `pixel_values` (when images are given), `original_sizes` (batch, 2)
            int64 and, for the prompts given, `input_points`, `input_labels`, `input_boxes`,
            `input_masks` (shapes and dtypes in the module docstring), and `labels` (batch,
            num_objects, target_size, target_size) float32 {0, 1} when masks are given.
        """
        if segmentation_maps is not None:
            # transformers' Sam2Processor turns one map per image into (256, 256) labels; EdgeTAM's
            # loss needs one mask per object at the input size, which `labels` builds.
            raise ValueError(
                "segmentation_maps is not supported: pass labels=[per image (num_objects, height, width) masks]"
            )
        images_kwargs = _flat_kwargs(kwargs)
        return_tensors = images_kwargs.pop("return_tensors", None)
        device = images_kwargs.pop("device", None)
        encoding = self._encode_images_or_sizes(images, original_sizes, images_kwargs)
        sizes = as_size_list(encoding["original_sizes"], "original_sizes")
        encoding.update(self._encode_prompts(sizes, input_points, input_labels, input_boxes, input_masks))
        if labels is not None:
            encoding["labels"] = self._encode_labels(labels, sizes)
        features = BatchFeature(data=convert_tensors(dict(encoding), return_tensors))
        if device is not None:
            if return_tensors == "np":
                raise ValueError('device= moves torch tensors; it cannot be used with return_tensors="np"')
            features = features.to(device)
        return features

    def _encode_images_or_sizes(self, images, original_sizes, images_kwargs) -> dict:
        given_sizes = as_size_list(original_sizes, "original_sizes") if original_sizes is not None else None
        if images is None:
            if given_sizes is None:
                raise ValueError("either images or original_sizes (batch, 2) as (height, width) must be given")
            return {"original_sizes": torch.tensor(given_sizes, dtype=torch.int64)}
        encoding = dict(self.image_processor(images, return_tensors="pt", **images_kwargs))
        if given_sizes is not None and given_sizes != as_size_list(encoding["original_sizes"], "original_sizes"):
            raise ValueError("original_sizes disagrees with the sizes of images; pass only one of them")
        return encoding

    def _encode_prompts(self, sizes, input_points, input_labels, input_boxes, input_masks) -> dict:
        points, labels, boxes = _plain(input_points), _plain(input_labels), _plain(input_boxes)
        if labels is not None and points is None:
            raise ValueError("input_labels were given without input_points")
        if points is not None:
            _check_nesting(points, "input_points", _POINTS_FORMAT, list_levels=4, leaf_size=2)
            _check_image_count(points, "input_points", len(sizes))
            if labels is None:  # like Sam2Model: points without labels are positive clicks
                labels = [[[1] * len(obj) for obj in image] for image in points]
            _check_nesting(labels, "input_labels", _LABELS_FORMAT, list_levels=3, leaf_size=None)
            _check_labels_match_points(labels, points)
            self._check_points(points, labels, sizes)
        if boxes is not None:
            _check_nesting(boxes, "input_boxes", _BOXES_FORMAT, list_levels=3, leaf_size=4)
            _check_image_count(boxes, "input_boxes", len(sizes))
            _check_boxes(boxes, sizes)
        self._check_every_object_prompted(points, labels, boxes)

        encoded = {}
        if points is not None and max(len(obj) for image in points for obj in image) > 0:
            encoded["input_points"], encoded["input_labels"] = self._pad_and_scale_points(points, labels, sizes)
        if boxes is not None:
            encoded["input_boxes"] = self._scale_coordinates(torch.tensor(boxes, dtype=torch.float32), sizes)
        if input_masks is not None:
            num_objects = len(boxes[0]) if boxes is not None else None
            if points is not None:
                num_objects = max(len(image) for image in points)
            encoded["input_masks"] = self._check_masks(input_masks, len(sizes), num_objects)
        return encoded

    def _is_padding(self, point, label) -> bool:
        return label in (LABEL_PADDING, self.point_pad_value) or all(v == self.point_pad_value for v in point)

    def _check_points(self, points, labels, sizes) -> None:
        allowed = (*PROMPT_LABELS, LABEL_PADDING, self.point_pad_value)
        for path, point, label, (height, width) in _iter_points(points, labels, sizes):
            if isinstance(label, float) and label.is_integer():
                label = int(label)
            if label not in allowed:
                raise ValueError(
                    f"input_labels{path} is {label!r}; expected 1 (positive), 0 (negative), 2 / 3 (box corners), "
                    f"-1 or {self.point_pad_value} (padding)"
                )
            if not all(math.isfinite(v) for v in point):
                raise ValueError(f"input_points{path} holds a non-finite coordinate: {point}")
            if not self._is_padding(point, label) and not (0 <= point[0] <= width and 0 <= point[1] <= height):
                raise ValueError(
                    f"input_points{path} = {point} lies outside the image (original_sizes {height, width}): x must "
                    f"be in [0, {width}] and y in [0, {height}] (original-image pixels)"
                )

    def _check_every_object_prompted(self, points, labels, boxes) -> None:
        """Every image needs an object and every object a prompt; box j goes with object j."""
        for index, image_boxes in enumerate(boxes or []):
            if not image_boxes:
                raise ValueError(f"input_boxes[{index}] is empty; every image needs at least one prompt")
        for index, (image_points, image_labels) in enumerate(zip(points or [], labels or [])):
            if not image_points:
                raise ValueError(f"input_points[{index}] is empty; every image needs at least one prompt")
            if boxes is not None:
                if len(boxes[index]) != len(image_points):
                    raise ValueError(
                        f"input_points[{index}] has {len(image_points)} objects but input_boxes[{index}] has "
                        f"{len(boxes[index])} boxes; object j is input_points[i][j] with input_boxes[i][j]"
                    )
                continue  # every object has its box
            for obj, object_points in enumerate(image_points):
                if not object_points:
                    raise ValueError(f"input_points[{index}][{obj}] has no points and the object has no box")
            if all(self._is_padding(p, l) for ps, ls in zip(image_points, image_labels) for p, l in zip(ps, ls)):
                raise ValueError(f"input_points[{index}] holds only padding points; every image needs a prompt")

    def _pad_and_scale_points(self, points, labels, sizes) -> tuple[torch.Tensor, torch.Tensor]:
        num_objects = max(len(image) for image in points)
        num_points = max(len(obj) for image in points for obj in image)
        pad = float(self.point_pad_value)
        coords = torch.full((len(points), num_objects, num_points, 2), pad, dtype=torch.float32)
        padded_labels = torch.full((len(points), num_objects, num_points), LABEL_PADDING, dtype=torch.int64)
        is_real = torch.zeros((len(points), num_objects, num_points), dtype=torch.bool)
        for (i, j, k), point, label in _iter_indexed_points(points, labels):
            if not self._is_padding(point, label):
                coords[i, j, k] = torch.tensor(point, dtype=torch.float32)
                padded_labels[i, j, k] = int(label)
                is_real[i, j, k] = True
        scaled = self._scale_coordinates(coords, sizes)
        return torch.where(is_real[..., None], scaled, coords), padded_labels

    def _scale_coordinates(self, coords: torch.Tensor, sizes) -> torch.Tensor:
        """(batch, ..., 2k) pixel (x, y, ...) -> 1024-space, per image.

        Same float32 operations in the same order as SAM2Transforms.transform_coords: divide x by
        the width and y by the height, then multiply by the resolution (not x * (1024 / width),
        which rounds differently).
        """
        pairs = coords.reshape(*coords.shape[:-1], -1, 2).clone()
        for index, (height, width) in enumerate(sizes):
            pairs[index, ..., 0] = pairs[index, ..., 0] / width
            pairs[index, ..., 1] = pairs[index, ..., 1] / height
        return (pairs * self.target_size).reshape(coords.shape)

    def _check_masks(self, input_masks, num_images: int, num_objects: int | None) -> torch.Tensor:
        expected = f"(batch={num_images}, num_objects, {self.image_processor.mask_size['height']}, "
        expected += f"{self.image_processor.mask_size['width']})"
        if isinstance(input_masks, (list, tuple)):
            try:
                input_masks = torch.stack([torch.as_tensor(np.asarray(m), dtype=torch.float32) for m in input_masks])
            except (RuntimeError, ValueError, TypeError) as error:
                raise ValueError(f"input_masks: the per-image masks must all have one shape {expected}") from error
        elif isinstance(input_masks, (np.ndarray, torch.Tensor)):
            input_masks = torch.as_tensor(input_masks).detach().cpu().float()
        else:
            raise ValueError(f"input_masks must be a tensor, array or list of them; got {type(input_masks).__name__}")
        mask_hw = (self.image_processor.mask_size["height"], self.image_processor.mask_size["width"])
        shape = tuple(input_masks.shape)
        if len(shape) != 4 or shape[0] != num_images or shape[2:] != mask_hw:
            raise ValueError(f"input_masks must have shape {expected}; got {shape}")
        if num_objects is not None and shape[1] != num_objects:
            raise ValueError(f"input_masks has {shape[1]} objects per image but the prompts have {num_objects}")
        if not bool(torch.isfinite(input_masks).all()):
            raise ValueError("input_masks holds non-finite values")
        return input_masks

    def _encode_labels(self, labels, sizes) -> torch.Tensor:
        """Per-image (num_objects, height, width) masks -> (batch, num_objects, side, side) {0, 1}.

        Resized as the image is (antialiased bilinear, see `resize_like_original`), then cut at 0.5,
        so that a label pixel is foreground where most of the image area under it is.
        """
        if len(labels) != len(sizes):
            raise ValueError(f"labels holds masks for {len(labels)} images but there are {len(sizes)} images")
        side = (self.target_size, self.target_size)
        resized = []
        for index, (masks, size) in enumerate(zip(labels, sizes)):
            masks = torch.as_tensor(np.asarray(masks)).float()
            if masks.ndim != 3 or tuple(masks.shape[1:]) != tuple(size):
                raise ValueError(
                    f"labels[{index}] must have shape (num_objects, {size[0]}, {size[1]}) (the image's height and "
                    f"width), got {tuple(masks.shape)}"
                )
            resized.append(resize_like_original(masks, side) >= 0.5)
        if len({masks.shape[0] for masks in resized}) > 1:
            raise ValueError(f"labels must hold the same number of objects per image, got {[len(m) for m in resized]}")
        return torch.stack(resized).float()

    def post_process_masks(self, masks, original_sizes, **kwargs) -> list[torch.Tensor]:
        """Mask logits -> image-resolution masks; see `EdgeTamImageProcessor.post_process_masks`."""
        return self.image_processor.post_process_masks(masks, original_sizes, **kwargs)

    def clamp_mask_logits(self, low_res_logits: torch.Tensor) -> torch.Tensor:
        """See `EdgeTamImageProcessor.clamp_mask_logits`."""
        return self.image_processor.clamp_mask_logits(low_res_logits)


# transformers' processors take options flat or grouped by modality; EdgeTAM has images only.
_OPTION_GROUPS = ("images_kwargs", "common_kwargs")
_OTHER_MODALITY_GROUPS = ("text_kwargs", "videos_kwargs", "audio_kwargs")


def _flat_kwargs(kwargs: dict) -> dict:
    """The processor's options, with the groups (`images_kwargs={...}`, ...) flattened."""
    flat = dict(kwargs)
    for group in _OTHER_MODALITY_GROUPS:
        if flat.pop(group, None):
            raise ValueError(f"{group} holds options for a modality EdgeTamProcessor has not (images and prompts only)")
    for group in _OPTION_GROUPS:
        options = flat.pop(group, None) or {}
        if not isinstance(options, dict):
            raise ValueError(f"{group} must be a dict of options, got {type(options).__name__}")
        flat.update(options)
    return flat


def _plain(value):
    """Tensors / arrays (also inside lists) -> nested Python lists; None stays None."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_nesting(value, name: str, layout: str, list_levels: int, leaf_size: int | None, path: str = "") -> None:
    """Raise unless `value` is `list_levels` nested lists of numbers, innermost of length `leaf_size`."""
    if list_levels == 0:
        if not _is_number(value):
            raise ValueError(f"{name} must be nested as {layout}; {name}{path} is {value!r}, not a number")
        return
    if not isinstance(value, list):
        raise ValueError(f"{name} must be nested as {layout}; {name}{path} is {value!r}, not a list")
    if list_levels == 1 and leaf_size is not None and len(value) != leaf_size:
        raise ValueError(f"{name} must be nested as {layout}; {name}{path} has {len(value)} values, not {leaf_size}")
    for index, item in enumerate(value):
        _check_nesting(item, name, layout, list_levels - 1, leaf_size, f"{path}[{index}]")


def _check_image_count(prompts: list, name: str, num_images: int) -> None:
    if len(prompts) != num_images:
        raise ValueError(
            f"{name} holds prompts for {len(prompts)} images but there are {num_images} images (images / original_sizes)"
        )


def _check_labels_match_points(labels, points) -> None:
    if len(labels) != len(points):
        raise ValueError(f"input_labels has {len(labels)} images but input_points has {len(points)}")
    for i, (image_labels, image_points) in enumerate(zip(labels, points)):
        if len(image_labels) != len(image_points):
            raise ValueError(
                f"input_labels[{i}] has {len(image_labels)} objects but input_points[{i}] has {len(image_points)}"
            )
        for j, (object_labels, object_points) in enumerate(zip(image_labels, image_points)):
            if len(object_labels) != len(object_points):
                raise ValueError(
                    f"input_labels[{i}][{j}] has {len(object_labels)} labels "
                    f"but input_points[{i}][{j}] has {len(object_points)} points"
                )


def _check_boxes(boxes, sizes) -> None:
    counts = [len(image_boxes) for image_boxes in boxes]
    if len(set(counts)) > 1:
        # a box cannot be marked as padding in the prompt encoder, so boxes are never padded
        raise ValueError(f"input_boxes must hold the same number of boxes for every image; got {counts}")
    for i, (image_boxes, (height, width)) in enumerate(zip(boxes, sizes)):
        for j, (x0, y0, x1, y1) in enumerate(image_boxes):
            path = f"input_boxes[{i}][{j}] = {[x0, y0, x1, y1]}"
            if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
                raise ValueError(f"{path} holds a non-finite coordinate")
            if x1 < x0 or y1 < y0:
                raise ValueError(f"{path} must be x0, y0, x1, y1 with x1 >= x0 and y1 >= y0")
            if min(x0, y0) < 0 or x1 > width or y1 > height:
                raise ValueError(
                    f"{path} lies outside the image (original_sizes {height, width}): x in [0, {width}], "
                    f"y in [0, {height}] expected"
                )


def _iter_indexed_points(points, labels):
    for i, (image_points, image_labels) in enumerate(zip(points, labels)):
        for j, (object_points, object_labels) in enumerate(zip(image_points, image_labels)):
            for k, (point, label) in enumerate(zip(object_points, object_labels)):
                yield (i, j, k), point, label


def _iter_points(points, labels, sizes):
    for (i, j, k), point, label in _iter_indexed_points(points, labels):
        yield f"[{i}][{j}][{k}]", point, label, sizes[i]
