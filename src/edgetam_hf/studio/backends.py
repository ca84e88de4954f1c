"""The two ways the studio runs a model, behind one small interface each: PyTorch
(`EdgeTamModel` / an `EdgeTamVideoProcessor` session with `EdgeTamVideoModel`) and onnxruntime
(`OnnxImagePredictor` / `OnnxVideoTracker` on an `edgetam-hf export` folder). Both are the
package's public API; these classes only translate the page's prompts into its calls and its
outputs into `ImagePrediction` / `FrameResult`. Every model call holds `StudioModels.computing()`."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from ..video.frame_source import FrameReader
from ..tracking.records import NO_OBJECT_SCORE

if TYPE_CHECKING:
    from .models import StudioModels


@dataclass
class ImagePrediction:
    candidates: np.ndarray  # (num_candidates, height, width) bool: 3, or 1 without multimask
    iou_scores: list[float]  # predicted IoU of each candidate
    object_score_logit: float  # > 0: the object is judged present


@dataclass
class FrameResult:
    """Every object's result on one video frame."""

    frame_idx: int
    object_ids: list[int]
    logits: torch.Tensor  # (num_objects, height, width) float32 mask logits at the video's size
    scores: dict[int, float]  # object score logit of each object that has a result on the frame


def _scores(object_ids: list[int], score_logits, low_res_logits) -> dict[int, float]:
    """The objects' scores, less those holding the placeholder (mask logits NO_OBJECT_SCORE
    everywhere, see EdgeTamVideoSegmentationOutput): they have no result on the frame."""
    tops = np.asarray(low_res_logits, dtype=np.float32).reshape(len(object_ids), -1).max(axis=1)
    scores = np.asarray(score_logits, dtype=np.float32).reshape(-1)
    return {obj_id: float(score) for obj_id, score, top in zip(object_ids, scores, tops, strict=True) if top > NO_OBJECT_SCORE / 2}


def _points_and_labels(points: list) -> tuple[list, list]:
    return [[x, y] for x, y, _ in points], [label for _, _, label in points]


class TorchImage:
    """An image encoded once (`get_image_embeddings`); each prediction runs the prompt encoder and
    mask decoder on the embeddings (`image_embeddings=`), as docs/getting_started.md does."""

    def __init__(self, models: "StudioModels", image: Image.Image):
        self.models = models
        inputs = models.image_processor(images=image)
        self.original_sizes = inputs["original_sizes"]
        with models.computing():
            self.embeddings = models.image_model.get_image_embeddings(inputs["pixel_values"].to(models.image_model.device))

    def predict(self, points: list, box: list | None, multimask: bool) -> ImagePrediction:
        processor, model = self.models.image_processor, self.models.image_model
        prompts = {}
        if points:
            coordinates, labels = _points_and_labels(points)
            prompts.update(input_points=[[coordinates]], input_labels=[[labels]])
        if box is not None:
            prompts["input_boxes"] = [[list(box)]]
        encoded = processor(original_sizes=self.original_sizes, **prompts)
        tensors = {name: encoded[name].to(model.device) for name in prompts}
        with self.models.computing():
            outputs = model(image_embeddings=self.embeddings, multimask_output=multimask, **tensors)
        masks = processor.post_process_masks(outputs.pred_masks.float().cpu(), self.original_sizes)[0][0]
        return ImagePrediction(masks.numpy(), outputs.iou_scores[0, 0].float().cpu().tolist(), float(outputs.object_score_logits[0, 0, 0]))


class OnnxImage:
    """An image encoded once by the export's image encoder; predictions run its prompt graph."""

    def __init__(self, models: "StudioModels", image: Image.Image):
        self.models = models
        with models.computing():
            self.encoded = models.onnx_image.encode_image(image)

    def predict(self, points: list, box: list | None, multimask: bool) -> ImagePrediction:
        prompts = {}
        if points:
            coordinates, labels = _points_and_labels(points)
            prompts.update(input_points=[coordinates], input_labels=[labels])
        if box is not None:
            prompts["input_boxes"] = [list(box)]
        with self.models.computing():
            prediction = self.models.onnx_image.predict(self.encoded, multimask_output=multimask, **prompts)
        return ImagePrediction(prediction.masks[0], prediction.iou_scores[0].tolist(), float(prediction.object_score_logits[0, 0]))


class TorchVideo:
    """An `EdgeTamVideoProcessor` session over the reader's frames (read when needed), keeping every
    result (bounded=False) so that any frame can be corrected and propagated again."""

    def __init__(self, models: "StudioModels", reader: FrameReader):
        self.models = models
        self.session = models.video_processor.init_video_session(
            video=reader, inference_device=models.video_model.device, video_storage_device="cpu", bounded=False
        )

    @property
    def obj_ids(self) -> list[int]:
        return self.session.obj_ids

    def prompt(self, frame_idx: int, obj_id: int, points: list, box: list | None) -> FrameResult:
        coordinates, labels = _points_and_labels(points)
        self.models.video_processor.add_inputs_to_inference_session(
            self.session, frame_idx=frame_idx, obj_ids=obj_id,
            input_points=[[coordinates]] if points else None, input_labels=[[labels]] if points else None,
            input_boxes=[[list(box)]] if box is not None else None,
        )
        with self.models.computing():
            return self._result(self.models.video_model(self.session, frame_idx=frame_idx))

    def clear(self, frame_idx: int, obj_id: int) -> FrameResult:
        with self.models.computing():
            return self._result(self.models.video_model.clear_prompts_in_frame(self.session, frame_idx, obj_id))

    def remove(self, obj_id: int) -> list[FrameResult]:
        with self.models.computing():
            return [self._result(output) for output in self.models.video_model.remove_object(self.session, obj_id)]

    def propagate(self, start: int | None, reverse: bool) -> Iterator[FrameResult]:
        outputs = self.models.video_model.propagate_in_video_iterator(self.session, start_frame_idx=start, reverse=reverse)
        while True:
            with self.models.computing():  # one frame per turn: other pages' clicks get in between
                output = next(outputs, None)
            if output is None:
                return
            yield self._result(output)

    def _result(self, output) -> FrameResult:
        size = [[self.session.video_height, self.session.video_width]]
        logits = self.models.video_processor.post_process_masks([output.pred_masks.float().cpu()], size, binarize=False)[0][:, 0]
        scores = _scores(output.object_ids, output.object_score_logits.float().cpu().numpy(), output.pred_masks.float().cpu().numpy())
        return FrameResult(output.frame_idx, list(output.object_ids), logits, scores)


class OnnxVideo:
    """An `OnnxVideoTracker` over the reader's frames (read when needed), keeping every result."""

    def __init__(self, models: "StudioModels", reader: FrameReader):
        from ..onnx import OnnxVideoTracker

        self.models = models
        self.tracker = OnnxVideoTracker(models.onnx_folder, reader)

    @property
    def obj_ids(self) -> list[int]:
        return self.tracker.object_ids

    def prompt(self, frame_idx: int, obj_id: int, points: list, box: list | None) -> FrameResult:
        coordinates, labels = _points_and_labels(points)
        with self.models.computing():
            frame = self.tracker.add_prompt(frame_idx, obj_id, points=coordinates or None, labels=labels or None, box=box)
        return self._result(frame)

    def clear(self, frame_idx: int, obj_id: int) -> FrameResult:
        with self.models.computing():
            return self._result(self.tracker.clear_prompts_in_frame(frame_idx, obj_id))

    def remove(self, obj_id: int) -> list[FrameResult]:
        with self.models.computing():
            return [self._result(frame) for frame in self.tracker.remove_object(obj_id)]

    def propagate(self, start: int | None, reverse: bool) -> Iterator[FrameResult]:
        frames = self.tracker.propagate(start_frame_idx=start, reverse=reverse)
        while True:
            with self.models.computing():
                frame = next(frames, None)
            if frame is None:
                return
            yield self._result(frame)

    def _result(self, frame) -> FrameResult:
        logits = torch.from_numpy(self.tracker.masks(frame, binarize=False))
        return FrameResult(frame.frame_idx, list(frame.object_ids), logits, _scores(frame.object_ids, frame.object_score_logits, frame.mask_logits))
