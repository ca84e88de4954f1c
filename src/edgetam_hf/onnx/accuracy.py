"""How far an export folder's answers are from the PyTorch model's, on the built-in sample image
(and, for a video export, the built-in sample clip).

`edgetam-hf export` prints this after writing a folder, so a float16 export says what it costs.
Needs torch (the reference), so it is not imported by `edgetam_hf.onnx`.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..modeling import EdgeTamModel
from ..image_processing import EdgeTamImageProcessor
from ..processing import EdgeTamProcessor
from ..sample_media import SAMPLE_BOXES, SAMPLE_RECTANGLE_CLICK, render_sample_clip, render_sample_image
from .predictor import OnnxImagePredictor

if TYPE_CHECKING:
    from ..modeling_video import EdgeTamVideoModel


@dataclass
class ExportAccuracy:
    max_abs_logit_difference: float  # low-resolution logits, worst over the cases
    largest_logit: float  # the PyTorch logits' largest magnitude, for scale
    max_abs_iou_difference: float
    mask_pixels_differing: float  # fraction of image-resolution mask pixels whose bit differs

    def lines(self) -> list[str]:
        return [
            f"low-resolution logits: max |difference| {self.max_abs_logit_difference:.3g} "
            f"(largest logit {self.largest_logit:.3g})",
            f"predicted IoU: max |difference| {self.max_abs_iou_difference:.3g}",
            f"mask pixels that differ: {100 * self.mask_pixels_differing:.4f} %",
        ]


def export_accuracy(model: EdgeTamModel, predictor: OnnxImagePredictor) -> ExportAccuracy:
    """Runs a click, a box and a box + click on the sample image through both; float32 PyTorch is the reference."""
    image = render_sample_image()
    side = model.config.prompt_encoder_config.image_size
    image_processor = EdgeTamImageProcessor(size={"height": side, "width": side}, mask_size={"height": side // 4, "width": side // 4})
    processor = EdgeTamProcessor(image_processor, target_size=side)
    pixel_values = processor(images=image)["pixel_values"]
    encoded = predictor.encode_pixel_values(pixel_values.numpy(), (image.height, image.width))
    click = [list(SAMPLE_RECTANGLE_CLICK)]
    cases = [
        {"input_points": [click]},
        {"input_boxes": [list(box) for box in SAMPLE_BOXES]},
        {"input_points": [click], "input_boxes": [list(SAMPLE_BOXES[1])]},
    ]
    logit_differences, iou_differences, differing, total, largest = [], [], 0, 0, 0.0
    with torch.no_grad():
        embeddings = model.get_image_embeddings(pixel_values.to(model.dtype))
        for case in cases:
            inputs = processor(original_sizes=[[image.height, image.width]], **{k: [v] for k, v in case.items()})
            reference = model(image_embeddings=embeddings, **{k: inputs[k] for k in case})
            ours = predictor.predict(encoded, **case)
            expected_logits = reference.pred_masks[0].float().numpy()
            logit_differences.append(np.abs(ours.low_res_logits - expected_logits).max())
            iou_differences.append(np.abs(ours.iou_scores - reference.iou_scores[0].float().numpy()).max())
            expected_masks = processor.post_process_masks(reference.pred_masks.float(), inputs["original_sizes"])[0]
            differing += int((expected_masks.numpy() != ours.masks).sum())
            total += ours.masks.size
            largest = max(largest, float(np.abs(expected_logits).max()))
    return ExportAccuracy(float(max(logit_differences)), largest, float(max(iou_differences)), differing / total)


@dataclass
class VideoExportAccuracy:
    max_abs_logit_difference: float  # low-resolution logits, worst over every frame and object
    largest_logit: float
    mask_pixels_differing: float  # fraction of video-resolution mask pixels whose bit differs
    num_frames: int

    def lines(self) -> list[str]:
        return [
            f"tracking, {self.num_frames} frames, 2 objects: low-resolution logits max |difference| "
            f"{self.max_abs_logit_difference:.3g} (largest logit {self.largest_logit:.3g})",
            f"tracking: mask pixels that differ: {100 * self.mask_pixels_differing:.4f} %",
        ]


def video_export_accuracy(model: "EdgeTamVideoModel", folder, num_frames: int = 8) -> VideoExportAccuracy:
    """Tracks a click and a box through the sample clip with both (float32 memories on both sides);
    the float32 PyTorch session is the reference."""
    from ..video_processing import EdgeTamVideoProcessor
    from .video_tracker import OnnxVideoTracker

    frames = render_sample_clip(num_frames)
    processor = EdgeTamVideoProcessor(target_size=model.config.image_size)
    session = processor.init_video_session(video=frames, memory_dtype=torch.float32)
    tracker = OnnxVideoTracker(folder, frames, memory_dtype="float32")
    processor.add_inputs_to_inference_session(session, 0, 1, input_points=[[[list(SAMPLE_RECTANGLE_CLICK)]]], input_labels=[[[1]]])
    processor.add_inputs_to_inference_session(session, 0, 2, input_boxes=[[list(SAMPLE_BOXES[0])]])
    tracker.add_prompt(0, 1, points=[list(SAMPLE_RECTANGLE_CLICK)])
    tracker.add_prompt(0, 2, box=list(SAMPLE_BOXES[0]))
    with torch.no_grad():
        model(session, frame_idx=0)
        expected = list(model.propagate_in_video_iterator(session))
    difference, largest, differing, total = 0.0, 0.0, 0, 0
    for ours, reference in zip(tracker.propagate(), expected):
        reference_logits = reference.pred_masks.float()
        difference = max(difference, float(np.abs(ours.mask_logits - reference_logits.numpy()).max()))
        largest = max(largest, float(reference_logits.abs().max()))
        reference_masks = processor.post_process_masks([reference_logits], [list(tracker.video_size)])[0][:, 0].numpy()
        differing += int((tracker.masks(ours) != reference_masks).sum())
        total += reference_masks.size
    return VideoExportAccuracy(difference, largest, differing / total, num_frames)
