"""The image model's checks of its inputs: shapes, prompts, coordinates in the input frame and
finite values, each failure a ValueError that names the argument."""

import torch

from .input_size import check_frame_size


def check_pixel_values(pixel_values: torch.Tensor, image_size: int) -> None:
    expected = f"(batch, 3, {image_size}, {image_size}) as EdgeTamProcessor returns"
    if not isinstance(pixel_values, torch.Tensor):
        raise ValueError(f"pixel_values must be a torch.Tensor of shape {expected}, got {type(pixel_values).__name__}")
    if pixel_values.ndim == 4 and pixel_values.shape[1] == 3:
        check_frame_size(pixel_values, image_size)  # the likely cause: a processor of another size
    if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (3, image_size, image_size):
        raise ValueError(f"pixel_values must have shape {expected}, got {tuple(pixel_values.shape)}")
    _check_finite("pixel_values", pixel_values)


def checked_prompts(input_points, input_labels, input_boxes, input_masks, batch_size):
    """Validates the prompt tensors; returns `(points, labels, num_objects)`.

    Labels default to 1 (foreground) when points come without them. A mask prompt alone becomes
    zero-length points, so that the prompt encoder gives no sparse token, as the original does.
    """
    for name, prompt in (("input_points", input_points), ("input_boxes", input_boxes), ("input_masks", input_masks)):
        if isinstance(prompt, torch.Tensor) and prompt.ndim >= 2 and prompt.shape[1] == 0:
            raise ValueError(f"{name} describes no object (shape {tuple(prompt.shape)}); expected num_objects >= 1")
    if input_boxes is not None:
        _check_shape("input_boxes", input_boxes, (batch_size, None, 4), "(batch, num_objects, 4)")
        is_flipped = (input_boxes[..., 2] < input_boxes[..., 0]) | (input_boxes[..., 3] < input_boxes[..., 1])
        if _reads_values() and bool(is_flipped.any()):
            raise ValueError("input_boxes must be (x0, y0, x1, y1) with x1 >= x0 and y1 >= y0")
    if input_points is None:
        if input_labels is not None:
            raise ValueError("input_labels were given without input_points")
        if input_boxes is not None:
            return None, None, input_boxes.shape[1]
        if input_masks is None:
            raise ValueError("give at least one prompt: input_points, input_boxes or input_masks")
        _check_shape("input_masks", input_masks, (batch_size, None, None, None), "(batch, num_objects, 256, 256)")
        num_objects = input_masks.shape[1]
        points = input_masks.new_zeros(batch_size, num_objects, 0, 2)
        labels = torch.zeros(batch_size, num_objects, 0, dtype=torch.long, device=input_masks.device)
        return points, labels, num_objects

    _check_shape("input_points", input_points, (batch_size, None, None, 2), "(batch, num_objects, num_points, 2)")
    if input_labels is None:
        input_labels = torch.ones(input_points.shape[:3], dtype=torch.long, device=input_points.device)
    _check_shape("input_labels", input_labels, tuple(input_points.shape[:3]), "(batch, num_objects, num_points) like input_points")
    if input_boxes is not None and input_boxes.shape[1] != input_points.shape[1]:
        raise ValueError(
            f"input_boxes and input_points must describe the same number of objects, got "
            f"{input_boxes.shape[1]} boxes and {input_points.shape[1]} point groups per image"
        )
    return input_points, input_labels, input_points.shape[1]


# How to bring prompts in image pixels into the model's input frame.
_SCALE_WITH_PROCESSOR = (
    "give prompts in image pixels to the processor, which scales them: "
    'processor(original_sizes=inputs["original_sizes"], input_points=..., input_labels=..., input_boxes=...)'
)


def check_in_input_frame(points, labels, boxes, image_size: int) -> None:
    """Refuses coordinates outside the model's `image_size` square: prompts in image pixels,
    which would otherwise give a plausible mask at the wrong place."""
    if not _reads_values():
        return
    real_points = points[labels != -1] if points is not None else None  # -1: padding
    for name, coordinates in (("input_points", real_points), ("input_boxes", boxes)):
        if coordinates is None or coordinates.numel() == 0:
            continue
        low, high = coordinates.min().item(), coordinates.max().item()
        if low < 0 or high > image_size:
            raise ValueError(
                f"{name} holds coordinates from {low:g} to {high:g}, outside the model's {image_size}x{image_size} "
                f"input frame in which the model reads them; {_SCALE_WITH_PROCESSOR}"
            )


def mask_prompt(input_masks, batch_size, num_objects, mask_input_size, dtype: torch.dtype):
    """`input_masks` (batch, num_objects, 256, 256) -> the prompt encoder's (batch * num_objects, 1, 256, 256)."""
    if input_masks is None:
        return None
    expected_shape = (batch_size, num_objects, *mask_input_size)
    description = f"(batch, num_objects, {mask_input_size[0]}, {mask_input_size[1]})"
    _check_shape("input_masks", input_masks, expected_shape, description)
    return input_masks.reshape(batch_size * num_objects, 1, *mask_input_size).to(dtype)


def _check_shape(name: str, tensor, expected: tuple, description: str) -> None:
    """Raises a ValueError naming `name` unless `tensor` has `expected` shape (None: any size)."""
    if not isinstance(tensor, torch.Tensor):
        hint = f"; {_SCALE_WITH_PROCESSOR}" if name in ("input_points", "input_boxes") else ""
        raise ValueError(f"{name} must be a torch.Tensor of shape {description}, got {type(tensor).__name__}{hint}")
    matches = tensor.ndim == len(expected) and all(
        want is None or have == want for have, want in zip(tensor.shape, expected)
    )
    if not matches:
        batch = expected[0]
        hint = "" if tensor.ndim == 0 or tensor.shape[0] == batch else f" (batch {batch}: that of pixel_values / image_embeddings)"
        raise ValueError(f"{name} must have shape {description}{hint}, got {tuple(tensor.shape)}")
    _check_finite(name, tensor)


def _check_finite(name: str, tensor: torch.Tensor) -> None:
    if tensor.is_complex():
        raise ValueError(f"{name} must hold real numbers; got dtype {tensor.dtype}")
    # A NaN prompt or pixel flows through every layer into NaN masks and scores without an error.
    if tensor.is_floating_point() and _reads_values() and not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} holds NaN or infinite values; expected finite numbers")


def _reads_values() -> bool:
    """Whether the checks of input values (NaN, coordinates) run: in eager mode only. Traced by
    torch.export or torch.compile they would be data-dependent guards, which export refuses; an
    exported program leaves such checks to its caller, as transformers' EdgeTamModel does."""
    return not torch.compiler.is_compiling()
