"""One image in the studio: encoded once when opened; each change of an object's prompts runs
only the prompt encoder and mask decoder (see backends.py). Keeps each object's candidates and
the one chosen, which the downloads hold."""

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .backends import ImagePrediction
from .exports import MAX_OBJECT_ID, binary_png, coco_document, zip_bytes
from .models import StudioModels
from .sessions import StudioError


@dataclass
class ImageObject:
    prediction: ImagePrediction
    chosen: int  # the candidate shown and downloaded

    @property
    def mask(self) -> np.ndarray:
        return self.prediction.candidates[self.chosen]


class ImageWork:
    kind = "image"

    def __init__(self, models: StudioModels, image: Image.Image, name: str):
        self.models, self.image, self.name = models, image, name
        self.objects: dict[int, ImageObject] = {}
        self.encoded = models.open_image(image)

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
        try:
            prediction = self.encoded.predict(points, box, multimask)
        except ValueError as error:
            raise StudioError(f"prompt: {error}") from None
        result = self.objects[obj_id] = ImageObject(prediction, int(np.argmax(prediction.iou_scores)))
        return result

    def choose(self, obj_id: int, index: int) -> ImageObject:
        found = self.get(obj_id)
        if not 0 <= index < len(found.prediction.candidates):
            raise StudioError(f"candidate {index + 1}: object {obj_id} has {len(found.prediction.candidates)} candidates")
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
            (1, obj_id, found.mask, {"score": found.prediction.iou_scores[found.chosen], "object_score_logit": found.prediction.object_score_logit})
            for obj_id, found in sorted(self.objects.items())
        ]
        return coco_document([image], masks)


def check_obj_id(obj_id: int) -> None:
    if not 1 <= obj_id <= MAX_OBJECT_ID:
        raise StudioError(f"object id {obj_id}: the studio numbers objects 1 to {MAX_OBJECT_ID}")
