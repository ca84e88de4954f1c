"""EdgeTAM as ONNX graphs, run by onnxruntime with NumPy alone (no torch needed to run them).

`edgetam-hf export MODEL --format onnx --out FOLDER` (or `edgetam_hf.onnx.export.export_onnx`,
which needs torch) writes the graphs; `OnnxImagePredictor(FOLDER)` runs them. See docs/export.md.
"""

from .manifest import is_export_folder, read_manifest
from .predictor import EncodedImage, OnnxImagePrediction, OnnxImagePredictor
from .video_tracker import OnnxVideoFrame, OnnxVideoTracker

__all__ = [
    "EncodedImage",
    "OnnxImagePrediction",
    "OnnxImagePredictor",
    "OnnxVideoFrame",
    "OnnxVideoTracker",
    "is_export_folder",
    "read_manifest",
]
