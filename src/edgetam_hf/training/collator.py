"""Batches for transformers' `Trainer` (or any loop): images + masks in, model inputs + labels out."""

import numpy as np

from ..processing import EdgeTamProcessor
from .prompts import sample_box_prompt, sample_click_prompt


class EdgeTamDataCollator:
    """Turns dataset items `{"image": PIL image or (H, W, 3) array, "masks": (num_objects, H, W)}`
    into `EdgeTamModel.forward` arguments: pixel_values, one sampled prompt per object
    (input_points, input_labels), labels and multimask_output.

    Each image contributes `objects_per_image` objects drawn from its masks (with repetition when
    it has fewer), so that every batch is rectangular without padded objects. A whole batch is
    prompted by noisy boxes with `box_probability`, else by one click per object, and asks for
    three masks only with one click: SAM 2's training draws the prompt kind once per batch and
    its `_use_multimask` rule gives one click three outputs and a box (two corner points) one.
    Without that rule a box would be answered at inference by the single-mask output that
    training never saw. The sampling is seeded, so a run repeats exactly.
    """

    def __init__(self, processor: EdgeTamProcessor, objects_per_image: int = 2, box_probability: float = 0.5, seed: int = 0):
        if not isinstance(processor, EdgeTamProcessor):
            raise TypeError(f"processor must be an EdgeTamProcessor, got {type(processor).__name__}")
        if objects_per_image < 1:
            raise ValueError(f"objects_per_image must be at least 1, got {objects_per_image}")
        if not 0.0 <= box_probability <= 1.0:
            raise ValueError(f"box_probability must be in [0, 1], got {box_probability}")
        self.processor = processor
        self.objects_per_image = objects_per_image
        self.box_probability = box_probability
        self.rng = np.random.default_rng(seed)

    def __call__(self, items: list[dict]) -> dict:
        with_boxes = bool(self.rng.random() < self.box_probability)
        sample_prompt = sample_box_prompt if with_boxes else sample_click_prompt
        images, labels, points, point_labels = [], [], [], []
        for index, item in enumerate(items):
            masks = _object_masks(item, index)
            chosen = masks[self._choose_objects(len(masks))]
            prompts = [sample_prompt(mask, self.rng) for mask in chosen]
            images.append(item["image"])
            labels.append(chosen)
            points.append([object_points for object_points, _ in prompts])
            point_labels.append([object_labels for _, object_labels in prompts])
        batch = self.processor(images=images, input_points=points, input_labels=point_labels, labels=labels)
        batch.pop("original_sizes")
        return {**batch, "multimask_output": not with_boxes}

    def _choose_objects(self, num_objects: int) -> np.ndarray:
        if num_objects >= self.objects_per_image:
            return self.rng.choice(num_objects, self.objects_per_image, replace=False)
        return self.rng.choice(num_objects, self.objects_per_image, replace=True)


def _object_masks(item: dict, index: int) -> np.ndarray:
    if not isinstance(item, dict) or "image" not in item or "masks" not in item:
        raise ValueError(f"item {index} must be a dict with 'image' and 'masks', got {type(item).__name__}")
    masks = np.asarray(item["masks"]) > 0
    if masks.ndim != 3 or len(masks) == 0:
        raise ValueError(f"item {index}: masks must have shape (num_objects >= 1, height, width), got {masks.shape}")
    return masks
