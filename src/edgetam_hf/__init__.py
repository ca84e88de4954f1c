"""edgetam-hf: Meta's EdgeTAM in the Hugging Face Transformers style."""

from .configuration import (
    EdgeTamConfig,
    EdgeTamMaskDecoderConfig,
    EdgeTamPromptEncoderConfig,
    EdgeTamVideoConfig,
    EdgeTamVisionConfig,
)
from .modeling import EdgeTamModel, EdgeTamPreTrainedModel
from .outputs import EdgeTamImageSegmentationOutput
from .processing import EdgeTamImageProcessor, EdgeTamProcessor

__all__ = [
    "EdgeTamConfig",
    "EdgeTamImageProcessor",
    "EdgeTamImageSegmentationOutput",
    "EdgeTamMaskDecoderConfig",
    "EdgeTamModel",
    "EdgeTamPreTrainedModel",
    "EdgeTamProcessor",
    "EdgeTamPromptEncoderConfig",
    "EdgeTamVideoConfig",
    "EdgeTamVisionConfig",
]
