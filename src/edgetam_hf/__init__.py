"""edgetam-hf: Meta's EdgeTAM in the Hugging Face Transformers style."""


def _torch_is_importable() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# Without torch only the NumPy + onnxruntime runtime, `edgetam_hf.onnx`, is usable.
_TORCH_AVAILABLE = _torch_is_importable()
if _TORCH_AVAILABLE:
    from .configuration import (
        EdgeTamConfig,
        EdgeTamMaskDecoderConfig,
        EdgeTamPromptEncoderConfig,
        EdgeTamVideoConfig,
        EdgeTamVisionConfig,
    )
    from .modeling import EdgeTamModel, EdgeTamPreTrainedModel
    from .modeling_video import EdgeTamVideoModel
    from .outputs import EdgeTamImageSegmentationOutput, EdgeTamVideoSegmentationOutput
    from .processing import EdgeTamImageProcessor, EdgeTamProcessor
    from .video import EdgeTamVideoInferenceSession
    from .video_processing import EdgeTamVideoProcessor

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
    "EdgeTamVideoInferenceSession",
    "EdgeTamVideoModel",
    "EdgeTamVideoProcessor",
    "EdgeTamVideoSegmentationOutput",
    "EdgeTamVisionConfig",
]


def _register_with_transformers_auto_classes() -> None:
    """Let transformers' Auto classes and `pipeline(...)` find our classes by our model types.

    Only our own keys are added: the model types `edgetam_hf` / `edgetam_hf_video` and our config
    classes, looked up by identity; transformers' `edgetam`, `edgetam_video` and `sam2` keep their
    own classes (docs/auto_classes.md). `exist_ok=True` makes this idempotent, and is needed
    because the mapping refuses a config whose class *name* is a transformers one even though the
    class is ours. It only fills registries (no model, file or network access), the one kind of
    work this package does at import, as transformers' own `trust_remote_code` loading does.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForMaskGeneration, AutoProcessor
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

    AutoConfig.register(EdgeTamConfig.model_type, EdgeTamConfig, exist_ok=True)
    AutoConfig.register(EdgeTamVideoConfig.model_type, EdgeTamVideoConfig, exist_ok=True)
    AutoModel.register(EdgeTamConfig, EdgeTamModel, exist_ok=True)
    AutoModelForMaskGeneration.register(EdgeTamConfig, EdgeTamModel, exist_ok=True)
    AutoModel.register(EdgeTamVideoConfig, EdgeTamVideoModel, exist_ok=True)
    # Straight into the mapping: AutoImageProcessor.register would first look the config class up
    # by its name, find transformers' EdgeTam entry and import its Sam2 image processor (and so
    # torchvision). Our processor needs neither backend library, so it serves both backends.
    for config_class in (EdgeTamConfig, EdgeTamVideoConfig):
        backends = {"pil": EdgeTamImageProcessor, "torchvision": EdgeTamImageProcessor}
        IMAGE_PROCESSOR_MAPPING.register(config_class, backends, exist_ok=True)
    AutoProcessor.register(EdgeTamConfig, EdgeTamProcessor, exist_ok=True)
    AutoProcessor.register(EdgeTamVideoConfig, EdgeTamVideoProcessor, exist_ok=True)
    # A video folder serves mask generation with the image model (which leaves the memory weights
    # aside), as transformers maps its own video config. Straight into the mapping: `register`
    # refuses a model class whose config class has another name.
    AutoModelForMaskGeneration._model_mapping.register(EdgeTamVideoConfig, EdgeTamModel, exist_ok=True)
    # transformers loading a folder through remote code imports its `edgetam_hf_classes.py`, which
    # imports this package and so runs this function (remote_code.py).


if _TORCH_AVAILABLE:
    _register_with_transformers_auto_classes()
else:
    __all__ = []
