"""edgetam-hf: Meta's EdgeTAM in the Hugging Face Transformers style.

The public names are imported on first use, so that `import edgetam_hf` (and with it the
command line's `--help` and the torch-free ONNX runtime, `edgetam_hf.onnx`) imports neither torch
nor transformers. Our classes join transformers' Auto classes when transformers loads them
(auto_registration.py).
"""

import importlib
from typing import TYPE_CHECKING

from .auto_registration import register_when_transformers_loads_them

# public name -> the module of this package that defines it
_PUBLIC_NAMES = {
    "EdgeTamConfig": "configuration",
    "EdgeTamImageProcessor": "image_processing",
    "EdgeTamImageSegmentationOutput": "outputs",
    "EdgeTamMaskDecoderConfig": "configuration",
    "EdgeTamModel": "modeling",
    "EdgeTamPreTrainedModel": "modeling",
    "EdgeTamProcessor": "processing",
    "EdgeTamPromptEncoderConfig": "configuration",
    "EdgeTamVideoConfig": "configuration",
    "EdgeTamVideoInferenceSession": "video",
    "EdgeTamVideoModel": "modeling_video",
    "EdgeTamVideoProcessor": "video_processing",
    "EdgeTamVideoSegmentationOutput": "outputs",
    "EdgeTamVisionConfig": "configuration",
}
__all__ = sorted(_PUBLIC_NAMES)

if TYPE_CHECKING:
    from .configuration import (
        EdgeTamConfig,
        EdgeTamMaskDecoderConfig,
        EdgeTamPromptEncoderConfig,
        EdgeTamVideoConfig,
        EdgeTamVisionConfig,
    )
    from .image_processing import EdgeTamImageProcessor
    from .modeling import EdgeTamModel, EdgeTamPreTrainedModel
    from .modeling_video import EdgeTamVideoModel
    from .outputs import EdgeTamImageSegmentationOutput, EdgeTamVideoSegmentationOutput
    from .processing import EdgeTamProcessor
    from .video import EdgeTamVideoInferenceSession
    from .video_processing import EdgeTamVideoProcessor


def __getattr__(name: str):
    if name not in _PUBLIC_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(f".{_PUBLIC_NAMES[name]}", __name__)
    except ModuleNotFoundError as error:
        if error.name not in ("torch", "transformers"):
            raise
        raise ImportError(
            f"edgetam_hf.{name} needs {error.name} (pip install edgetam-hf installs it); without it only the "
            "ONNX runtime, edgetam_hf.onnx, is usable (docs/export.md)"
        ) from error
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC_NAMES})


register_when_transformers_loads_them()
