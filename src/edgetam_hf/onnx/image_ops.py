"""Image pre- and post-processing in NumPy, with the numerics of `EdgeTamImageProcessor`.

Preprocessing: RGB as float32 in [0, 1], resized to the model's square with torchvision's
antialiased bilinear filter (align_corners off), then `(x - mean) / std`. Post-processing:
low-resolution mask logits upsampled to the image with plain bilinear interpolation
(`F.interpolate(..., mode="bilinear", align_corners=False)`). Both resizes are separable: one pass
along the width, one along the height, each a weighted sum over a small window of source pixels,
so no (height x width) weight matrix is ever built.
"""

import numpy as np

_SUPPORTED_CHANNELS = (1, 3, 4)


def image_to_unit_rgb(image) -> np.ndarray:
    """A PIL image or a (H, W), (H, W, C) uint8 / float array -> (3, H, W) float32 RGB in [0, 1].

    uint8 is divided by 255 in float32; float must already lie in [0, 1]. Grayscale is repeated to
    RGB and RGBA drops its alpha channel.
    """
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image, without importing PIL
        from ..image_modes import to_rgb8  # PIL only when given a PIL image

        image = np.asarray(image if image.mode == "RGB" else to_rgb8(image))
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a PIL image or a numpy array (H, W, C); got {type(image).__name__}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in _SUPPORTED_CHANNELS:
        raise ValueError(f"image must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image has zero height or width (shape {image.shape})")
    if image.dtype == np.uint8:
        unit = image.astype(np.float32) / np.float32(255)
    elif np.issubdtype(image.dtype, np.floating):
        unit = image.astype(np.float32)
        if not np.isfinite(unit).all() or unit.min() < 0 or unit.max() > 1:
            raise ValueError("image: float images must hold finite values in [0, 1]; pass uint8 for [0, 255]")
    else:
        raise ValueError(f"image must be uint8 in [0, 255] or float in [0, 1]; got dtype {image.dtype}")
    channels_first = np.ascontiguousarray(unit[:, :, :3].transpose(2, 0, 1))
    return np.repeat(channels_first, 3, axis=0) if channels_first.shape[0] == 1 else channels_first


def pixel_values_from_image(image, size: int, mean, std) -> np.ndarray:
    """An image -> (1, 3, size, size) float32 normalised pixels, as `EdgeTamImageProcessor` gives them."""
    unit = image_to_unit_rgb(image)
    if unit.shape[1:] != (size, size):  # torchvision returns an image already at size unchanged
        unit = _resize_axis(unit, size, axis=2, antialias=True)
        unit = _resize_axis(unit, size, axis=1, antialias=True)
    mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    return ((unit - mean) / std)[None]


def upsample_logits(logits: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """(..., h, w) float32 logits -> (..., height, width) by bilinear interpolation, align_corners off."""
    logits = np.asarray(logits, dtype=np.float32)
    height, width = size_hw
    upsampled = _resize_axis(logits, width, axis=logits.ndim - 1, antialias=False)
    return _resize_axis(upsampled, height, axis=logits.ndim - 2, antialias=False)


def mask_prompt_at_model_size(mask: np.ndarray, size: int) -> np.ndarray:
    """A (height, width) binary mask -> (1, 1, size, size) float32 in {0, 1}, as the original
    `add_new_mask` resizes a mask prompt: antialiased bilinear on the 0 / 1 values, then >= 0.5
    (a mask already at the model's size is used as it is)."""
    unit = np.asarray(mask, dtype=bool).astype(np.float32)
    if unit.shape != (size, size):
        unit = _resize_axis(_resize_axis(unit, size, axis=1, antialias=True), size, axis=0, antialias=True)
        unit = (unit >= np.float32(0.5)).astype(np.float32)
    return unit[None, None]


def _resize_axis(values: np.ndarray, output_size: int, axis: int, antialias: bool) -> np.ndarray:
    """Resamples one axis: output[i] = sum_k weights[i, k] * values[indices[i, k]], summed in float32."""
    indices, weights = _linear_taps(values.shape[axis], output_size, antialias)
    moved = np.moveaxis(values, axis, -1)
    output = np.zeros((*moved.shape[:-1], output_size), dtype=np.float32)
    for tap in range(indices.shape[1]):
        output += moved[..., indices[:, tap]] * weights[:, tap]
    return np.moveaxis(output, -1, axis)


def _linear_taps(input_size: int, output_size: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights (output_size, taps) of a triangle (bilinear) filter.

    With antialiasing (torchvision's resize), the filter widens by the downscaling factor so that
    every source pixel contributes, and its weights are normalised to sum to 1; upscaling keeps
    the plain two-tap filter. Without it (mask upsampling), two taps at `scale * (i + 0.5) - 0.5`,
    clamped at the border, as PyTorch's `upsample_bilinear2d`. Weights have zero on unused taps.
    """
    scale = np.float32(input_size) / np.float32(output_size)
    outputs = np.arange(output_size, dtype=np.float64)
    if not antialias:
        # One rounding to float32 of scale * (i + 0.5) - 0.5, as PyTorch's fused multiply-add gives.
        source = np.maximum(float(scale) * (outputs + 0.5) - 0.5, 0).astype(np.float32)
        low = np.minimum(source.astype(np.int64), input_size - 1)
        high = np.minimum(low + 1, input_size - 1)
        fraction = (source - low).astype(np.float32)
        weights = np.stack([np.float32(1) - fraction, fraction], axis=1)
        return np.stack([low, high], axis=1), weights

    scale = float(scale)
    support = scale if scale >= 1.0 else 1.0
    inverse_scale = 1.0 / scale if scale >= 1.0 else 1.0
    centres = scale * (outputs + 0.5)
    first = np.maximum((centres - support + 0.5).astype(np.int64), 0)
    last = np.minimum((centres + support + 0.5).astype(np.int64), input_size)
    taps = int((last - first).max())
    indices = first[:, None] + np.arange(taps)[None, :]
    distances = (indices - centres[:, None] + 0.5) * inverse_scale
    weights = np.clip(1.0 - np.abs(distances), 0.0, None)
    weights = np.where(indices < last[:, None], weights, 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.minimum(indices, input_size - 1), weights.astype(np.float32)


def video_pixel_values(frame, size: int, mean, std) -> np.ndarray:
    """A video frame (PIL image or (H, W, 3) uint8 array) -> (1, 3, size, size) float32, as
    `EdgeTamVideoProcessor` (the original video predictor) loads frames: PIL's bicubic resize on
    uint8, / 255 in float64, cast to float32, then `(x - mean) / std` in float32."""
    from PIL import Image

    if not hasattr(frame, "mode"):  # not a PIL image
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be a PIL image or an (H, W, 3) uint8 array; got {frame.dtype} {frame.shape}")
        frame = Image.fromarray(np.ascontiguousarray(frame))
    resized = np.asarray(frame.convert("RGB").resize((size, size)))
    unit = (resized / 255.0).astype(np.float32).transpose(2, 0, 1)
    mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    return ((unit - mean) / std)[None]
