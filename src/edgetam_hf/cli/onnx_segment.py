"""`edgetam-hf segment --model EXPORT_FOLDER`: the same objects and files, computed by onnxruntime."""

from PIL import Image

from ..onnx import OnnxImagePredictor
from .prompts import ObjectPrompt
from .segment import ObjectMask


def segment_image_onnx(folder: str, image: Image.Image, prompts: list[ObjectPrompt]) -> list[ObjectMask]:
    """`segment_image`'s answer from an export folder: the image encoded once, each object decoded,
    one click alone answered by the best of the three candidates."""
    predictor = OnnxImagePredictor(folder)
    encoded = predictor.encode_image(image)
    results = []
    for prompt in prompts:
        prediction = predictor.predict(
            encoded,
            input_points=[prompt.points] if prompt.points else None,
            input_labels=[prompt.labels] if prompt.points else None,
            input_boxes=[list(prompt.box)] if prompt.box is not None else None,
            multimask_output=prompt.box is None and len(prompt.points) == 1,
            binarize=False,
        )
        chosen = int(prediction.iou_scores[0].argmax())
        results.append(
            ObjectMask(
                prompt.obj_id,
                prediction.masks[0, chosen],
                prediction.iou_scores[0].tolist(),
                chosen,
                float(prediction.object_score_logits[0, 0]),
            )
        )
    return results
