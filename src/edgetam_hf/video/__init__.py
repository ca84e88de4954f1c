"""Video inference: the session (state), the memory bank and the propagation that drives the model.

The session is imported on first use, so that `video.frame_source` (reading frames, no torch)
serves the ONNX command line without importing torch.
"""

from typing import TYPE_CHECKING

__all__ = ["EdgeTamVideoInferenceSession"]

if TYPE_CHECKING:
    from .session import EdgeTamVideoInferenceSession


def __getattr__(name: str):
    if name != "EdgeTamVideoInferenceSession":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .session import EdgeTamVideoInferenceSession

    return EdgeTamVideoInferenceSession
