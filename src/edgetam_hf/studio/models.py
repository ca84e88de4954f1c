"""The models behind the studio: those `--model` names (Meta's .pt, a converted folder, a Hub id,
or an `edgetam-hf export` folder, run on onnxruntime), or without `--model` the tiny models
bundled with the package, so that the studio works on a fresh machine with no download; the
page then says they know rendered shapes only."""

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).resolve().parent.parent
BUNDLED_IMAGE_MODEL = PACKAGE_DIR / "tiny_model"
BUNDLED_VIDEO_MODEL = PACKAGE_DIR / "tiny_video_model"


@dataclass
class StudioModels:
    description: str  # what the page says about the models
    bundled: bool
    # PyTorch: the models and their processors; onnxruntime: the export folder and its predictor.
    image_model: "torch.nn.Module | None" = None  # EdgeTamModel
    image_processor: object = None  # EdgeTamProcessor sized for the image model
    video_model: "torch.nn.Module | None" = None  # EdgeTamVideoModel
    video_processor: object = None  # EdgeTamVideoProcessor sized for the video model
    onnx_folder: Path | None = None
    onnx_image: object = None  # OnnxImagePredictor
    dtype_name: str = "float32"
    device: torch.device = torch.device("cpu")
    # Sessions compute one at a time: two models running at once on the same cores only slow
    # each other down, and a propagation releases the lock between frames so clicks get in.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def computing(self):
        """The lock, no gradients, and autocast for a reduced --dtype (as the command line)."""
        from ..cli.models import computing_in

        with self.lock, computing_in(self.dtype_name, self.device):
            yield

    def open_image(self, image):
        """The image encoded once: a `TorchImage` or an `OnnxImage`."""
        from .backends import OnnxImage, TorchImage

        return OnnxImage(self, image) if self.onnx_folder is not None else TorchImage(self, image)

    def open_video(self, reader):
        """A tracking session over the reader's frames: a `TorchVideo` or an `OnnxVideo`."""
        from .backends import OnnxVideo, TorchVideo

        return OnnxVideo(self, reader) if self.onnx_folder is not None else TorchVideo(self, reader)


def load_studio_models(source: str | None, device: torch.device, dtype_name: str = "float32") -> StudioModels:
    """The image and video models of `source`, or the bundled tiny ones when it is None."""
    from ..cli.models import load_model, processor_for
    from ..modeling import EdgeTamModel
    from ..modeling_video import EdgeTamVideoModel
    from ..onnx.manifest import is_export_folder
    from ..processing import EdgeTamProcessor
    from ..video_processing import EdgeTamVideoProcessor

    if source is not None and is_export_folder(source):
        from ..onnx import OnnxImagePredictor
        from ..onnx.manifest import read_manifest

        read_manifest(source, video=True)  # a ValueError naming what is missing: the studio needs the video graphs
        return StudioModels(
            description=f"model: {source} (ONNX export, onnxruntime)", bundled=False,
            onnx_folder=Path(source).expanduser(), onnx_image=OnnxImagePredictor(source),
        )
    if source is None:
        image_model = load_model(EdgeTamModel, str(BUNDLED_IMAGE_MODEL), device)
        video_model = load_model(EdgeTamVideoModel, str(BUNDLED_VIDEO_MODEL), device)
        description = bundled_description()
    else:
        image_model = load_model(EdgeTamModel, source, device)
        video_model = load_model(EdgeTamVideoModel, source, device)
        description = f"model: {source}"
    return StudioModels(
        description=description,
        bundled=source is None,
        image_model=image_model,
        image_processor=processor_for(EdgeTamProcessor, image_model),
        video_model=video_model,
        video_processor=processor_for(EdgeTamVideoProcessor, video_model),
        dtype_name=dtype_name,
        device=device,
    )


def bundled_description() -> str:
    """The page's banner without --model, with the bundled models' own figures."""
    image = json.loads((BUNDLED_IMAGE_MODEL / "training_report.json").read_text())
    return (
        f"No --model given: the tiny models bundled with edgetam-hf ({image['parameters'] / 1e6:.1f}M parameters, "
        f"{image['image_size']} px input), trained on rendered shapes only. They segment and track the sample "
        "image and clip; on real photos and videos they are useless. Start the studio with --model edgetam.pt "
        "(Meta's checkpoint), a converted folder or a Hub id for real media."
    )
