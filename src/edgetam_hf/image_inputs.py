"""What the processors accept as images and sizes: any image -> (3, H, W) float32 RGB in [0, 1]
(bit-exact to the original's ToTensor), its resize as the original's, and `original_sizes` checked."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .image_modes import to_rgb8, unit_grey

_SUPPORTED_CHANNELS = (1, 3, 4)


def as_image_list(images) -> list:
    """One image, a 4D batch or a list of images -> list of single images."""
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("images is an empty list; expected at least one image")
        return list(images)
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        if len(images) == 0:
            raise ValueError(f"images is an empty batch of shape {tuple(images.shape)}; expected at least one image")
        return list(images)
    return [images]


def image_to_float_rgb(image, input_data_format: str | None = None) -> torch.Tensor:
    """PIL / numpy / torch image -> (3, H, W) float32 RGB in [0, 1], bit-exact to ToTensor."""
    if isinstance(image, Image.Image):
        # 16-bit / 32-bit / float images keep their full range as float (convert("RGB") clips them)
        grey = unit_grey(image, "images")
        image = grey if grey is not None else np.array(image if image.mode == "RGB" else to_rgb8(image))
        input_data_format = "channels_last"
    if isinstance(image, np.ndarray):
        # a writable C-ordered copy: torch refuses to share read-only memory without a warning
        tensor = torch.from_numpy(np.array(image, order="C"))
    elif isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
    else:
        raise ValueError(
            f"images must be PIL images, numpy arrays or torch tensors (or a list of them); got {type(image).__name__}"
        )
    chw = _to_channels_first(tensor, input_data_format, prefer_last=isinstance(image, np.ndarray))
    return _to_rgb(_to_unit_float(chw))


def _to_channels_first(tensor: torch.Tensor, data_format: str | None, prefer_last: bool) -> torch.Tensor:
    """Find the channel axis: as `data_format` says, else where 1, 3 or 4 channels fit (numpy
    arrays are tried channels-last first, tensors channels-first first)."""
    if tensor.ndim == 2:
        return tensor[None]
    if tensor.ndim != 3:
        raise ValueError(
            "images: each image must have 2 (H, W) or 3 (H, W, C or C, H, W) dimensions; "
            f"got shape {tuple(tensor.shape)}"
        )
    if data_format not in (None, "channels_first", "channels_last"):
        raise ValueError(f'input_data_format must be "channels_first" or "channels_last"; got {data_format!r}')
    first_ok = tensor.shape[0] in _SUPPORTED_CHANNELS and data_format != "channels_last"
    last_ok = tensor.shape[-1] in _SUPPORTED_CHANNELS and data_format != "channels_first"
    if not (first_ok or last_ok):
        raise ValueError(
            "images: expected 1 (grayscale), 3 (RGB) or 4 (RGBA) channels "
            f"({data_format or 'first or last'}); got shape {tuple(tensor.shape)}"
        )
    channels_last = last_ok and (prefer_last or not first_ok)
    # .contiguous() as ToTensor does: the resize below runs on a plain NCHW layout
    return tensor.permute(2, 0, 1).contiguous() if channels_last else tensor.contiguous()


def _to_unit_float(chw: torch.Tensor) -> torch.Tensor:
    if chw.shape[1] == 0 or chw.shape[2] == 0:
        raise ValueError(f"images: an image has zero height or width (shape {tuple(chw.shape)})")
    if chw.dtype == torch.uint8:
        return chw.to(torch.float32).div(255)
    if not chw.dtype.is_floating_point:
        raise ValueError(f"images must be uint8 in [0, 255] or float in [0, 1]; got dtype {chw.dtype}")
    chw = chw.to(torch.float32)
    if not bool(torch.isfinite(chw).all()) or chw.min() < 0 or chw.max() > 1:
        raise ValueError(
            "images: float images must hold finite values in [0, 1] "
            f"(got min {chw.min().item():.4g}, max {chw.max().item():.4g}); pass uint8 for values in [0, 255]"
        )
    return chw


def _to_rgb(chw: torch.Tensor) -> torch.Tensor:
    channels = chw.shape[0]
    if channels == 1:
        return chw.expand(3, -1, -1).contiguous()
    if channels == 4:
        return chw[:3].contiguous()
    return chw


def resize_like_original(pixels: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """(3, H, W) float -> (3, *size_hw) as torchvision's tensor Resize (antialiased bilinear)."""
    if tuple(pixels.shape[-2:]) == tuple(size_hw):
        return pixels  # torchvision's resize returns the input unchanged at the target size
    resized = F.interpolate(pixels[None], size=list(size_hw), mode="bilinear", align_corners=False, antialias=True)
    return resized[0]


def as_size_list(original_sizes, name: str) -> list[tuple[int, int]]:
    """(batch, 2) sizes as tensor / array / nested list -> [(height, width), ...], validated."""
    if isinstance(original_sizes, (torch.Tensor, np.ndarray)):
        original_sizes = original_sizes.tolist()
    if not isinstance(original_sizes, (list, tuple)) or not original_sizes:
        raise ValueError(f"{name} must be (batch, 2): (height, width) per image; got {original_sizes!r}")
    sizes = []
    for index, size in enumerate(original_sizes):
        if isinstance(size, (list, tuple)):
            # e.g. [[session.video_height, session.video_width]]: 0-d tensors, as transformers' session holds them
            size = [side.item() if isinstance(side, torch.Tensor) and side.ndim == 0 else side for side in size]
        if not isinstance(size, (list, tuple)) or len(size) != 2:
            raise ValueError(f"{name}[{index}] must be (height, width); got {size!r}")
        if not all(_is_image_side(side) for side in size):
            raise ValueError(f"{name}[{index}] must hold two positive integers (height, width); got {size!r}")
        sizes.append((int(size[0]), int(size[1])))
    return sizes


def _is_image_side(value) -> bool:
    """A whole number of pixels, positive and within int32 (tensors of sizes are int64)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(value) and value == int(value) and 0 < value < 2**31


def convert_tensors(data: dict, return_tensors: str | None) -> dict:
    """Keep torch tensors ("pt" / None) or turn them into numpy arrays ("np")."""
    if return_tensors in (None, "pt"):
        return data
    if return_tensors == "np":
        return {key: value.numpy() for key, value in data.items()}
    raise ValueError(f'return_tensors must be "pt", "np" or None; got {return_tensors!r}')
