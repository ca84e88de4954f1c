"""Video inference: the session (state), the memory bank and the propagation that drives the model."""

from .session import EdgeTamVideoInferenceSession

__all__ = ["EdgeTamVideoInferenceSession"]
