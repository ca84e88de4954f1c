"""Image processor for EdgeTAM with the original's numerics.

Ports the preprocessing of `sam2.sam2_image_predictor.SAM2ImagePredictor.set_image`
(`sam2.utils.transforms.SAM2Transforms`) and the upsampling of
`SAM2Transforms.postprocess_masks`, behind the API of transformers' `Sam2ImageProcessor`; and,
as methods for transformers' mask-generation pipeline, the steps of the original's automatic mask
generator (`mask_generation.py`).

Why not transformers' Sam2 image processor: it resizes the uint8 image and rounds back to uint8,
which moves normalised pixels by up to 0.0175 and the mask logits by up to ~17. The original
converts to float in [0, 1] first and resizes the float image; so do we.
"""

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.processing_utils import ImagesKwargs

from .conventions import MASK_LOGITS_CLAMP
from .host_memory import check_room_for_upsampled_masks
from .image_inputs import as_image_list, as_size_list, convert_tensors, image_to_float_rgb, resize_like_original
from .image_modes import to_rgb8
from .mask_generation import crops_and_point_prompts, filter_mask_batch, remove_duplicate_masks
from .masks_and_boxes import rle_to_mask, rle_with_list_counts
from .remote_code import WritesItsOwnAutoMap, image_processor_class_path
from .video.hole_filling import small_component_mask

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# transformers' Sam2/EdgeTam preprocessor_config.json switches. The original's pipeline is fixed,
# so a config is accepted only when it asks for exactly that pipeline.
_FIXED_PIPELINE_OPTIONS = {
    "do_resize": True,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "do_convert_rgb": True,
    "resample": 2,  # PIL.Image.BILINEAR
}
# Written by transformers' Sam2 processors; meaningless here, dropped on load.
_IGNORED_CONFIG_KEYS = ("do_pad", "pad_size", "mask_pad_size", "default_to_square", "data_format", "device")


class EdgeTamImageProcessorKwargs(ImagesKwargs, total=False):
    """`ImagesKwargs` plus the size of the low-resolution mask logits (the mask prompt size)."""

    mask_size: dict[str, int]


class EdgeTamImageProcessor(WritesItsOwnAutoMap, BaseImageProcessor):
    """RGB image -> normalised (3, 1024, 1024) float32 pixels, and mask logits -> image-size masks.

    Ports `SAM2Transforms` (sam2/utils/transforms.py): ToTensor (uint8 / 255 in float32), resize to
    `size` with bilinear interpolation, antialias on and align_corners off, then `(x - mean) / std`.
    """

    valid_kwargs = EdgeTamImageProcessorKwargs
    model_input_names = ["pixel_values"]

    def __init__(
        self,
        size: dict[str, int] | None = None,
        mask_size: dict[str, int] | None = None,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        **kwargs,
    ):
        _check_fixed_pipeline_options(kwargs)
        for key in (*_FIXED_PIPELINE_OPTIONS, *_IGNORED_CONFIG_KEYS):
            kwargs.pop(key, None)
        super().__init__(**kwargs)
        self.size = _size_dict(size or {"height": 1024, "width": 1024}, "size")
        self.mask_size = _size_dict(mask_size or {"height": 256, "width": 256}, "mask_size")
        self.image_mean = [float(v) for v in (image_mean or IMAGENET_MEAN)]
        self.image_std = [float(v) for v in (image_std or IMAGENET_STD)]
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError(
                f"image_mean and image_std must hold 3 values (std > 0); got {self.image_mean} and {self.image_std}"
            )

    def to_dict(self) -> dict:
        # Names the classes file written beside a saved folder (remote_code.py): AutoImageProcessor
        # looks for its auto_map in this dict.
        return {**super().to_dict(), "auto_map": {"AutoImageProcessor": image_processor_class_path()}}

    def preprocess(
        self, images, input_data_format: str | None = None, return_tensors: str | None = "pt"
    ) -> BatchFeature:
        """Preprocess one image or a batch.

        Args:
            images: a PIL image, a numpy array (H, W), (H, W, C) or (C, H, W), a torch tensor
                (C, H, W), (H, W, C) or (H, W), a 4D array / tensor (batch first), or a list of
                those. uint8 is divided by 255; float must already be in [0, 1]. Grayscale is
                repeated to RGB and RGBA drops its alpha channel (like PIL's `convert("RGB")`).
            input_data_format: "channels_first" or "channels_last" for 3D arrays / tensors; by
                default numpy arrays are read as (H, W, C) and tensors as (C, H, W) when the shape
                allows it.
            return_tensors: "pt" (default; None means the same) or "np".

        Returns:
            `BatchFeature` with `pixel_values` (batch, 3, size["height"], size["width"]) float32 and
            `original_sizes` (batch, 2) int64 as (height, width).
        """
        unit_images = [image_to_float_rgb(image, input_data_format) for image in as_image_list(images)]
        original_sizes = torch.tensor([list(image.shape[-2:]) for image in unit_images], dtype=torch.int64)
        pixel_values = torch.stack([self._resize_and_normalize(image) for image in unit_images])
        data = {"pixel_values": pixel_values, "original_sizes": original_sizes}
        return BatchFeature(data=convert_tensors(data, return_tensors))

    def _resize_and_normalize(self, unit_image: torch.Tensor) -> torch.Tensor:
        """(3, H, W) float32 in [0, 1] -> (3, size) normalised."""
        pixels = resize_like_original(unit_image, (self.size["height"], self.size["width"]))
        mean = torch.tensor(self.image_mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.image_std, dtype=torch.float32).view(3, 1, 1)
        # subtract then divide, in float32, as torchvision's Normalize does (not a fused multiply)
        return (pixels - mean) / std

    def post_process_masks(
        self,
        masks,
        original_sizes,
        mask_threshold: float = 0.0,
        binarize: bool = True,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        apply_non_overlapping_constraints: bool = False,
        reshaped_input_sizes=None,
    ) -> list[torch.Tensor]:
        """Upsample low-resolution mask logits to each image's size, as the original does.

        `F.interpolate(logits, (height, width), mode="bilinear", align_corners=False)` straight from
        the 256x256 logits (SAM2Transforms.postprocess_masks); the logits are not clamped first.

        Args:
            masks: per image, logits of shape (..., 256, 256), e.g. (num_objects, num_masks, 256, 256):
                a tensor / array whose first dimension is the image, or a list of them.
            original_sizes: (batch, 2) as (height, width), e.g. the processor's `original_sizes`.
            mask_threshold: logits above it are foreground when `binarize`.
            binarize: return bool masks; otherwise float32 logits at image resolution.
            max_hole_area, max_sprinkle_area: as the original's `SAM2Transforms.postprocess_masks`,
                on the low-resolution logits: background regions (8-connected) of at most
                `max_hole_area` pixels become foreground (threshold + 10), then foreground regions
                of at most `max_sprinkle_area` pixels become background (threshold - 10). 0: off.
            apply_non_overlapping_constraints: where objects overlap, keep the one with the highest
                logit and push the others' logits to at most -10 (the original's
                `_apply_non_overlapping_constraints`, over the first dimension of each image's masks,
                the objects).
            reshaped_input_sizes: ignored; transformers' mask-generation pipeline passes it (for SAM's
                padded inputs; EdgeTAM resizes to the full square and pads nothing).

        Raises:
            ValueError: when the float32 masks at image size would not fit in the memory now
                available (a huge image or too many masks at once), before allocating them.

        Returns:
            list with one tensor per image, (..., height, width), bool or float32.
        """
        masks = [_as_float_tensor(image_masks, f"masks[{index}]") for index, image_masks in enumerate(masks)]
        sizes = as_size_list(original_sizes, "original_sizes")
        if len(masks) != len(sizes):
            raise ValueError(f"masks holds {len(masks)} images but original_sizes holds {len(sizes)}")
        for image_masks, size in zip(masks, sizes, strict=True):
            check_room_for_upsampled_masks(image_masks, size)
        upsampled = []
        for image_masks, size in zip(masks, sizes, strict=True):
            image_masks = _remove_small_regions(image_masks, mask_threshold, max_hole_area, max_sprinkle_area)
            logits = _upsample_logits(image_masks, size)
            if apply_non_overlapping_constraints:
                logits = _non_overlapping(logits)
            upsampled.append(logits > mask_threshold if binarize else logits)
        return upsampled

    @staticmethod
    def clamp_mask_logits(low_res_logits: torch.Tensor, limit: float = MASK_LOGITS_CLAMP) -> torch.Tensor:
        """Clamp low-resolution logits to +-32 like the third output of `SAM2ImagePredictor.predict`.

        Use it on logits you return to users or feed back as `input_masks`; the image-resolution
        masks of the original are upsampled from the unclamped logits (see `post_process_masks`).
        """
        return torch.clamp(low_res_logits, -limit, limit)

    # The next three methods are what transformers' MaskGenerationPipeline calls (with
    # `post_process_masks`); the algorithm and its differences from transformers' Sam2 helpers are
    # described in `mask_generation.py`.

    def generate_crop_boxes(
        self,
        image,
        target_size: int,
        crop_n_layers: int = 0,
        overlap_ratio: float = 512 / 1500,
        points_per_crop: int = 32,
        crop_n_points_downscale_factor: int = 1,
        device: torch.device | str | None = None,
    ):
        """Crops of the image and the grid of point prompts of each, as the original generates them.

        Args:
            image: one image (see `preprocess`).
            target_size: side of the model's square input (1024): the frame of the returned points.
            crop_n_layers: layers of crops after the whole image; layer i has (2**i)**2 crops.
            overlap_ratio: overlap of neighbouring crops in layer 1, as a fraction of the short side.
            points_per_crop: points per side of the grid (the original's `points_per_side`).
            crop_n_points_downscale_factor: layer i uses points_per_crop / factor**i points per side.
            device: where the returned tensors live (default CPU).

        Returns:
            `(crop_boxes, points, cropped_images, labels)`: (num_crops, 4) float32 [x0, y0, x1, y1]
            in image pixels; (1, num_points, num_crops, 2) float32 points in the model's input frame;
            one (3, h, w) image per crop (a view: uint8 for a PIL image, else float in [0, 1]);
            (1, num_points, num_crops) int64 ones.
        """
        pixels = _rgb_to_crop(image)  # (3, H, W)
        crop_boxes, points = crops_and_point_prompts(
            tuple(pixels.shape[-2:]),
            int(target_size),
            crop_n_layers,
            overlap_ratio,
            points_per_crop,
            crop_n_points_downscale_factor,
        )
        points = points.permute(1, 0, 2)[None]  # the pipeline slices (1, num_points, num_crops, 2)
        labels = torch.ones(points.shape[:3], dtype=torch.int64)
        cropped_images = [pixels[:, y0:y1, x0:x1] for x0, y0, x1, y1 in crop_boxes]
        device = device or "cpu"
        boxes = torch.tensor(crop_boxes, dtype=torch.float32)
        return boxes.to(device), points.to(device), cropped_images, labels.to(device)

    def filter_masks(
        self,
        masks: torch.Tensor,
        iou_scores: torch.Tensor,
        original_size,
        cropped_box_image,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        mask_threshold: float = 0.0,
        stability_score_offset: float = 1.0,
    ):
        """Keep the good masks of one batch of points of one crop (the original's `_process_batch`).

        Predicted IoU > `pred_iou_thresh`, stability score >= `stability_score_thresh` (filters off
        at 0), then binarise at `mask_threshold`, drop masks cut by a crop edge, and place the rest
        in the whole image. Defaults are the original automatic mask generator's (transformers'
        pipeline passes its own, with pred_iou_thresh=0.88).

        Args:
            masks: (num_points, num_masks, crop_h, crop_w) logits from `post_process_masks(binarize=False)`.
            iou_scores: (num_points, num_masks).
            original_size: (height, width) of the whole image.
            cropped_box_image: the crop's [x0, y0, x1, y1] in the image.

        Returns:
            `(rles, scores, boxes)`: a run-length encoding per kept mask (see `mask_generation.py`),
            (K,) predicted IoU and (K, 4) int64 boxes [x0, y0, x1, y1] in image pixels.
        """
        return filter_mask_batch(
            masks,
            iou_scores,
            original_size,
            cropped_box_image,
            pred_iou_thresh,
            stability_score_thresh,
            mask_threshold,
            stability_score_offset,
        )

    def post_process_for_mask_generation(
        self,
        all_masks: list[dict],
        all_scores: torch.Tensor,
        all_boxes: torch.Tensor,
        crops_nms_thresh: float = 0.7,
        box_nms_thresh: float | None = None,
    ):
        """Remove duplicate masks as the original does, then decode the survivors.

        NMS on the mask boxes by predicted IoU within each crop (`box_nms_thresh`, default
        `crops_nms_thresh`: transformers' pipeline has one threshold, the original two that
        default to the same 0.7), then, with several crops, NMS across crops that keeps the mask
        from the smaller crop (`crops_nms_thresh`).

        Args:
            all_masks: the RLEs `filter_masks` returned, concatenated in the order of the batches.
            all_scores: (N,) predicted IoU; all_boxes: (N, 4) boxes in image pixels.

        Returns:
            `(masks, scores, rles, boxes)`: a (height, width) bool tensor per kept mask, best first
            (within a crop), with its (K,) predicted IoU, its RLE and its (K, 4) box.
        """
        box_nms_thresh = crops_nms_thresh if box_nms_thresh is None else box_nms_thresh
        kept = remove_duplicate_masks(all_masks, all_scores, all_boxes, box_nms_thresh, crops_nms_thresh)
        rles = [rle_with_list_counts(all_masks[index]) for index in kept.tolist()]
        masks = [rle_to_mask(rle) for rle in rles]
        return masks, all_scores[kept.to(all_scores.device)], rles, all_boxes[kept.to(all_boxes.device)]


def _rgb_to_crop(image) -> torch.Tensor:
    """(3, H, W) RGB to cut crops from. A PIL image stays uint8, as the original crops its uint8
    array: `preprocess` converts each crop to float (the same values as converting first), and a
    huge image is not held as float32 (4 bytes a value) and range-checked as a whole."""
    if isinstance(image, Image.Image):
        return torch.from_numpy(np.array(image if image.mode == "RGB" else to_rgb8(image))).permute(2, 0, 1)
    return image_to_float_rgb(image)


def _check_fixed_pipeline_options(config: dict) -> None:
    for key, expected in _FIXED_PIPELINE_OPTIONS.items():
        value = config.get(key, expected)
        matches = math.isclose(value, expected) if isinstance(expected, float) else value == expected
        if not matches:
            raise ValueError(
                f"{key}={value!r} is not supported: EdgeTAM's original preprocessing always uses {key}={expected!r}"
            )


def _size_dict(size, name: str) -> dict[str, int]:
    if not isinstance(size, dict) or set(size) != {"height", "width"} or min(size.values()) <= 0:
        raise ValueError(f'{name} must be {{"height": int, "width": int}} with positive values; got {size!r}')
    return {"height": int(size["height"]), "width": int(size["width"])}


def _remove_small_regions(logits: torch.Tensor, threshold: float, max_hole_area: float, max_sprinkle_area: float):
    """(..., h, w) logits with small holes filled and small sprinkles removed (see `post_process_masks`).
    Both kinds of region are found on the given logits, as the original finds them."""
    holes, sprinkles = logits <= threshold, logits > threshold
    if max_hole_area > 0:
        logits = torch.where(_small_regions(holes, max_hole_area), torch.tensor(threshold + 10.0), logits)
    if max_sprinkle_area > 0:
        logits = torch.where(_small_regions(sprinkles, max_sprinkle_area), torch.tensor(threshold - 10.0), logits)
    return logits


def _small_regions(region: torch.Tensor, max_area: float) -> torch.Tensor:
    """(..., h, w) bool -> the pixels of `region` whose 8-connected component has at most `max_area` pixels."""
    planes = region.reshape(-1, 1, *region.shape[-2:])
    return small_component_mask(planes, int(max_area)).reshape(region.shape)


def _non_overlapping(logits: torch.Tensor) -> torch.Tensor:
    """(num_objects, ...) logits: at each pixel only the highest object keeps its logit."""
    if logits.ndim < 3 or logits.shape[0] == 1:
        return logits
    objects = torch.arange(logits.shape[0], device=logits.device).reshape(-1, *([1] * (logits.ndim - 1)))
    keep = torch.argmax(logits, dim=0, keepdim=True) == objects
    return torch.where(keep, logits, torch.clamp(logits, max=-10.0))


def _upsample_logits(logits: torch.Tensor, size_hw: tuple[int, int]):
    if logits.ndim < 2:
        raise ValueError(f"masks: expected logits of shape (..., height, width); got {tuple(logits.shape)}")
    leading_shape = logits.shape[:-2]
    # F.interpolate wants (N, C, h, w); each plane is interpolated on its own, so the grouping of
    # the leading dimensions does not change any value.
    planes = logits.reshape(1, -1, *logits.shape[-2:]) if logits.ndim != 4 else logits
    upsampled = F.interpolate(planes, size=list(size_hw), mode="bilinear", align_corners=False)
    return upsampled.reshape(*leading_shape, *size_hw)


def _as_float_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor or numpy array; got {type(value).__name__}")
    return value.float()
