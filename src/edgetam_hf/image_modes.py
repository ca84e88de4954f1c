"""PIL images of more than 8 bits a channel, read as what they show.

PIL's `convert("RGB")` clips a 16-bit greyscale image (`I;16`, how a 16-bit PNG opens) at 255, so
all but the darkest pixels turn white, and a float image (`F`) is truncated to 0 or 1: the model
then segments a blank image without a word. Here such images are scaled from their full range
instead, or refused with a message where no range is defined. NumPy and PIL only (the ONNX
runtime reads images through this module too).
"""

import numpy as np
from PIL import Image

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_UINT16_MAX = 65535


def unit_grey(image: Image.Image, argument: str = "image") -> np.ndarray | None:
    """A 16-bit, 32-bit integer or float image -> (H, W) float32 in [0, 1]; None for other modes.

    16-bit images are scaled from 0..65535. A 32-bit integer image (`I`, how older Pillows open
    16-bit PNGs, and integer TIFFs) is read as 16-bit when its values lie in 0..65535, a float one
    (`F`) must lie in [0, 1]; anything else is refused, since no scale to 8 bits can be guessed.
    """
    if image.mode not in (*_SIXTEEN_BIT_MODES, "I", "F"):
        return None
    values = np.asarray(image)
    if image.mode == "F":
        if values.size and (not np.isfinite(values).all() or values.min() < 0 or values.max() > 1):
            raise ValueError(
                f"{argument}: a float (mode F) image must hold finite values in [0, 1]; got {_range_of(values)}; "
                "scale it to [0, 1] or save it with 8 or 16 bits a channel"
            )
        return values.astype(np.float32)
    if values.size and (values.min() < 0 or values.max() > _UINT16_MAX):
        raise ValueError(
            f"{argument}: a 32-bit integer (mode I) image is read as 16-bit, values 0..65535; got {_range_of(values)}; "
            "save it with 8 or 16 bits a channel"
        )
    return (values.astype(np.float32) / np.float32(_UINT16_MAX)).astype(np.float32)


def to_rgb8(image: Image.Image, argument: str = "image") -> Image.Image:
    """Any PIL image -> an 8-bit RGB image: more than 8 bits scaled from their range (`unit_grey`),
    the rest by PIL's `convert("RGB")` (grey repeated, alpha dropped, palettes resolved; a loaded
    copy even of an RGB image, so the file may be closed)."""
    grey = unit_grey(image, argument)
    if grey is None:
        return image.convert("RGB")
    return Image.fromarray(np.rint(grey * 255).astype(np.uint8)).convert("RGB")


def _range_of(values: np.ndarray) -> str:
    return f"values from {values.min():.6g} to {values.max():.6g}"
