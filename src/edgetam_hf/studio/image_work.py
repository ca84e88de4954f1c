"""One image in the studio: encoded once when opened; each change of an object's prompts runs
only the prompt encoder and mask decoder on the stored embeddings (`image_embeddings=`), as
docs/getting_started.md shows."""

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .exports import MAX_OBJECT_ID, binary_png, coco_document, zip_bytes
from .models import StudioModels
from .sessions import StudioError


@dataclass
class ImageObject:
    candidates: np.ndarray  # (num_candidates, height, width) bool: 3, or 1 without multimask
    iou_scores: list[float]  # predicted IoU of each candidate
    object_score_logit: float  # > 0: the object is judged present
    chosen: int  # the candidate shown and downloaded

    @property
    def mask(self) -> np.ndarray:
        return self.candidates[self.chosen]


class ImageWork:
    kind = "image"

    def __init__(self, models: StudioModels, image: Image.Image, name: str):
        self.models, self.image, self.name = models, image, name
        self.objects: dict[int, ImageObject] = {}
        processor = models.image_processor
        inputs = processor(images=image)
        self.original_sizes = inputs["original_sizes"]
        with models.computing():
            self.embeddings = models.image_model.get_image_embeddings(inputs["pixel_values"].to(models.image_model.device))

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.name, "width": self.image.width, "height": self.image.height}

    def source_png(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    def predict(self, obj_id: int, points: list, box: list | None, multimask: bool) -> ImageObject:
        """The object's masks from all its prompts: `points` [[x, y, label], ...] (label 1 keeps,
        0 excludes) and an optional `box` [x0, y0, x1, y1], in image pixels."""
        check_obj_id(obj_id)
        if not points and box is None:
            raise StudioError("give the object a click or a box")
        prompt_inputs = {}
        if points:
            prompt_inputs.update(input_points=[[[[x, y] for x, y, _ in points]]], input_labels=[[[label for _, _, label in points]]])
        if box is not None:
            prompt_inputs["input_boxes"] = [[list(box)]]
        processor, model = self.models.image_processor, self.models.image_model
        try:
            encoded = processor(original_sizes=self.original_sizes, **prompt_inputs)
        except ValueError as error:
            raise StudioError(f"prompt: {error}") from None
        tensors = {name: encoded[name].to(model.device) for name in prompt_inputs}
        with self.models.computing():
            outputs = model(image_embeddings=self.embeddings, multimask_output=multimask, **tensors)
        masks = processor.post_process_masks(outputs.pred_masks.float().cpu(), self.original_sizes)[0][0]  # (candidates, h, w)
        iou_scores = outputs.iou_scores[0, 0].float().cpu().tolist()
        result = ImageObject(masks.numpy(), iou_scores, float(outputs.object_score_logits[0, 0, 0]), int(np.argmax(iou_scores)))
        self.objects[obj_id] = result
        return result

    def choose(self, obj_id: int, index: int) -> ImageObject:
        found = self.get(obj_id)
        if not 0 <= index < len(found.candidates):
            raise StudioError(f"candidate {index + 1}: object {obj_id} has {len(found.candidates)} candidates")
        found.chosen = index
        return found

    def get(self, obj_id: int) -> ImageObject:
        if obj_id not in self.objects:
            raise StudioError(f"object {obj_id} has no mask yet")
        return self.objects[obj_id]

    def remove(self, obj_id: int) -> None:
        self.objects.pop(obj_id, None)

    def close(self) -> None:
        """Nothing runs in the background of an image; the session's folder goes with the session."""

    def masks_zip(self) -> bytes:
        """mask_<id>.png (0 / 255) per object, each its own chosen mask (objects may overlap)."""
        return zip_bytes((f"mask_{obj_id}.png", binary_png(found.mask)) for obj_id, found in sorted(self.objects.items()))

    def coco(self) -> str:
        image = {"id": 1, "file_name": self.name, "width": self.image.width, "height": self.image.height}
        masks = [
            (1, obj_id, found.mask, {"score": found.iou_scores[found.chosen], "object_score_logit": found.object_score_logit})
            for obj_id, found in sorted(self.objects.items())
        ]
        return coco_document([image], masks)


def check_obj_id(obj_id: int) -> None:
    if not 1 <= obj_id <= MAX_OBJECT_ID:
        raise StudioError(f"object id {obj_id}: the studio numbers objects 1 to {MAX_OBJECT_ID}")
