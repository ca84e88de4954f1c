"""`OnnxImagePredictor`: an export folder run by onnxruntime, with NumPy pre- and post-processing.

Semantics of `EdgeTamProcessor` + `EdgeTamModel` (image encoded once, any number of objects
decoded per call); no torch.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .image_ops import pixel_values_from_image, upsample_logits
from .manifest import IMAGE_ENCODER, PROMPT_MASK_DECODER, open_graph, read_manifest
from .prompts import prompt_tokens


@dataclass
class OnnxImagePrediction:
    """What `OnnxImagePredictor.predict` returns; num_masks is 3 with multimask output, else 1."""

    masks: np.ndarray  # (num_objects, num_masks, height, width) bool, or float32 logits with binarize=False
    iou_scores: np.ndarray  # (num_objects, num_masks) predicted IoU
    low_res_logits: np.ndarray  # (num_objects, num_masks, 256, 256) mask logits, not clamped
    object_score_logits: np.ndarray  # (num_objects, 1) > 0 where the object is judged present


@dataclass
class EncodedImage:
    """An image's features from the image encoder graph, kept for any number of prompts."""

    high_res_feat_s0: np.ndarray  # (1, hidden / 8, 256, 256)
    high_res_feat_s1: np.ndarray  # (1, hidden / 4, 128, 128)
    vision_features: np.ndarray  # (1, hidden, 64, 64), without the no-memory embedding
    original_size: tuple[int, int]  # (height, width)


class OnnxImagePredictor:
    """Segments objects in images from clicks, boxes and mask prompts with the exported graphs.

    >>> predictor = OnnxImagePredictor("edgetam-onnx")          # doctest: +SKIP
    >>> image = predictor.encode_image(pil_image)                # doctest: +SKIP
    >>> prediction = predictor.predict(image, input_points=[[[500, 375]]])  # doctest: +SKIP
    """

    def __init__(self, folder, providers: list[str] | None = None, session_options=None):
        """
        Args:
            folder: what `edgetam-hf export MODEL --format onnx --out FOLDER` wrote (or
                `--format executorch`: its programs run by ExecuTorch's runtime).
            providers: onnxruntime execution providers (default: CPUExecutionProvider).
            session_options: an `onnxruntime.SessionOptions`, e.g. to set the number of threads.
        """
        self.folder = Path(folder).expanduser()
        self.manifest = read_manifest(self.folder)
        preprocessing = self.manifest["preprocessing"]
        self.image_size = int(preprocessing["image_size"])
        self.mask_size = int(preprocessing["mask_size"])
        self.image_mean = preprocessing["image_mean"]
        self.image_std = preprocessing["image_std"]
        self.dtype = np.dtype(self.manifest["dtype"])
        self._sessions = {
            name: open_graph(self.folder, self.manifest, name, providers, session_options)
            for name in (IMAGE_ENCODER, PROMPT_MASK_DECODER)
        }

    def encode_image(self, image) -> EncodedImage:
        """A PIL image or (H, W[, C]) uint8 / float array -> its features (the expensive part)."""
        pixel_values = pixel_values_from_image(image, self.image_size, self.image_mean, self.image_std)
        return self.encode_pixel_values(pixel_values, original_size=self._image_size_hw(image))

    def encode_pixel_values(self, pixel_values: np.ndarray, original_size: tuple[int, int]) -> EncodedImage:
        """Already preprocessed (1, 3, S, S) pixels (as `EdgeTamProcessor` gives them) -> features."""
        expected = (1, 3, self.image_size, self.image_size)
        if not isinstance(pixel_values, np.ndarray) or pixel_values.shape != expected:
            found = getattr(pixel_values, "shape", type(pixel_values).__name__)
            raise ValueError(f"pixel_values must be a numpy array of shape {expected}; got {found}")
        feat_s0, feat_s1, vision_features = self._sessions[IMAGE_ENCODER].run(
            None, {"pixel_values": pixel_values.astype(self.dtype)}
        )
        return EncodedImage(feat_s0, feat_s1, vision_features, (int(original_size[0]), int(original_size[1])))

    def predict(
        self,
        image: EncodedImage,
        input_points=None,
        input_labels=None,
        input_boxes=None,
        input_masks=None,
        multimask_output: bool = True,
        binarize: bool = True,
        mask_threshold: float = 0.0,
    ) -> OnnxImagePrediction:
        """Masks of every prompted object of one encoded image.

        Args:
            image: from `encode_image`.
            input_points: [object][point][x, y] in image pixels; objects may have different counts.
            input_labels: [object][point]: 1 positive, 0 negative; default all 1.
            input_boxes: [object][x0, y0, x1, y1] in image pixels; box j belongs to object j.
            input_masks: (num_objects, 256, 256) low-resolution mask logits as a dense prompt
                (e.g. an earlier `low_res_logits[:, k]`, clamped to +-32 as the original feeds them).
            multimask_output: three candidates per object (True), or the single mask with the
                original's fallback to the best candidate when it is unstable (False).
            binarize: masks as bool (logit > mask_threshold) or as float32 logits at image size.
        """
        if not isinstance(image, EncodedImage):
            raise TypeError(f"image must be what encode_image returns (EncodedImage); got {type(image).__name__}")
        if input_points is None and input_boxes is None and input_masks is None:
            raise ValueError("give at least one prompt: input_points, input_boxes or input_masks")
        point_coords, point_labels = prompt_tokens(input_points, input_labels, input_boxes, image.original_size, self.image_size)
        mask_input, has_mask_input = self._mask_prompt(input_masks, point_coords.shape[0])
        num_objects = mask_input.shape[0]
        if point_coords.shape[0] == 0:  # a mask prompt alone: no sparse token for any object
            point_coords = np.zeros((num_objects, 0, 2), dtype=np.float32)
            point_labels = np.zeros((num_objects, 0), dtype=np.int64)
        outputs = self._sessions[PROMPT_MASK_DECODER].run(
            None,
            {
                "vision_features": image.vision_features,
                "high_res_feat_s0": image.high_res_feat_s0,
                "high_res_feat_s1": image.high_res_feat_s1,
                "point_coords": point_coords.astype(self.dtype),
                "point_labels": point_labels,
                "mask_input": mask_input.astype(self.dtype),
                "has_mask_input": np.array([has_mask_input], dtype=self.dtype),
            },
        )
        multimask_logits, multimask_iou, single_logits, single_iou, object_score_logits = (
            output.astype(np.float32) for output in outputs
        )
        low_res_logits, iou_scores = (multimask_logits, multimask_iou) if multimask_output else (single_logits, single_iou)
        masks = upsample_logits(low_res_logits, image.original_size)
        return OnnxImagePrediction(
            masks=masks > mask_threshold if binarize else masks,
            iou_scores=iou_scores,
            low_res_logits=low_res_logits,
            object_score_logits=object_score_logits,
        )

    def _mask_prompt(self, input_masks, num_objects_from_tokens: int) -> tuple[np.ndarray, float]:
        """(num_objects, 1, 256, 256) mask input and the has-mask flag (zeros and 0 without masks)."""
        side = self.mask_size
        if input_masks is None:
            return np.zeros((max(num_objects_from_tokens, 1), 1, side, side), dtype=np.float32), 0.0
        masks = np.asarray(input_masks, dtype=np.float32)
        if masks.ndim != 3 or masks.shape[1:] != (side, side):
            raise ValueError(f"input_masks must have shape (num_objects, {side}, {side}); got {masks.shape}")
        if num_objects_from_tokens and masks.shape[0] != num_objects_from_tokens:
            raise ValueError(f"input_masks has {masks.shape[0]} objects but the points / boxes have {num_objects_from_tokens}")
        if not np.isfinite(masks).all():
            raise ValueError("input_masks holds non-finite values")
        return masks[:, None], 1.0

    @staticmethod
    def _image_size_hw(image) -> tuple[int, int]:
        if hasattr(image, "size") and hasattr(image, "mode"):  # PIL: (width, height)
            return image.size[1], image.size[0]
        return tuple(np.shape(image)[:2])
