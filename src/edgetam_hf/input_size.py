"""The model's input size (`image_size`), chosen when a model is loaded.

No weight of EdgeTAM depends on the input size: the trunk and the neck are convolutions, the
position encodings (sine, random Fourier, RoPE) are functions of the grid, the perceiver has a
fixed number of latents whatever the memory map's size, and masks and memories are strided from
the input. So a checkpoint trained at 1024 runs at 512 by changing the config's sizes only; the
released model loses some accuracy for a ~4x cheaper frame (docs/performance.md).

What constrains a size:
  * the trunk's total stride, 32: its stride-32 map is doubled back onto the stride-16 one by
    the FPN neck, so the input must be a multiple of 32;
  * the video model's 2D spatial perceiver splits the memory map (input / 16) into a fixed grid
    of sqrt(num_latents_2d) x sqrt(num_latents_2d) equal windows (16x16 for EdgeTAM), as the
    original does: for the released video model the input is a multiple of 256 (256, 512, 768, 1024).
"""

import copy
import math

from .configuration import EdgeTamConfig, EdgeTamVideoConfig

TRUNK_STRIDE = 32
# Smaller inputs leave a stride-32 map of one cell; larger ones than the released model's only
# cost time (the checkpoint is trained at 1024).
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 64, 1024


def image_size_of(config: EdgeTamConfig) -> int:
    """The side of the model's square input."""
    return config.prompt_encoder_config.image_size


def image_size_step(config: EdgeTamConfig) -> int:
    """Every supported size is a multiple of this (see the module's docstring)."""
    step = TRUNK_STRIDE
    num_latents_2d = getattr(config, "perceiver_resampler_num_latents_2d", 0)
    if num_latents_2d > 0:
        # The memory map is input / mask_downsampler_total_stride and must split into the window grid.
        step = math.lcm(step, config.mask_downsampler_total_stride * math.isqrt(num_latents_2d))
    return step


def supported_image_sizes(config: EdgeTamConfig) -> list[int]:
    step = image_size_step(config)
    return list(range(step * math.ceil(MIN_IMAGE_SIZE / step), MAX_IMAGE_SIZE + 1, step))


def check_image_size(config: EdgeTamConfig, image_size) -> None:
    """Raises a ValueError naming `image_size`, what it must be, and the sizes this model takes."""
    supported = supported_image_sizes(config)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size not in supported:
        step = image_size_step(config)
        if step == TRUNK_STRIDE:
            reason = f"a multiple of {TRUNK_STRIDE} (the trunk's stride)"
        else:
            windows = math.isqrt(config.perceiver_resampler_num_latents_2d)
            reason = (
                f"a multiple of {step} (the 2D spatial perceiver splits the memory map, image_size / "
                f"{config.mask_downsampler_total_stride}, into {windows}x{windows} equal windows)"
            )
        raise ValueError(
            f"image_size={image_size!r}: this {type(config).__name__} takes an int from {MIN_IMAGE_SIZE} to "
            f"{MAX_IMAGE_SIZE} that is {reason}: one of {supported}"
        )


def with_image_size(config: EdgeTamConfig, image_size: int) -> EdgeTamConfig:
    """A copy of `config` for a `image_size` square input, every size that follows from it set.

    The fields our modules read are the prompt encoder's and (video) the model's `image_size`;
    the feature and RoPE grid sizes are set too so that a folder saved from the model describes
    it correctly to transformers' EdgeTam classes, which read them.
    """
    check_image_size(config, image_size)
    config = copy.deepcopy(config)  # the caller's config stays as it was
    config.prompt_encoder_config.image_size = image_size
    # The neck's levels, from the trunk's stride 4 down, one halving per level.
    num_levels = len(config.vision_config.backbone_feature_sizes)
    config.vision_config.backbone_feature_sizes = [[image_size // (4 * 2**level)] * 2 for level in range(num_levels)]
    if isinstance(config, EdgeTamVideoConfig):
        config.image_size = image_size
        config.memory_attention_rope_feat_sizes = [image_size // config.prompt_encoder_config.patch_size] * 2
    return config


def check_frame_size(pixel_values, image_size: int) -> None:
    """Refuses pixels preprocessed for another input size, naming both sizes, before they reach a
    layer that would fail on a grid of the wrong size with a shape error of its own."""
    height, width = pixel_values.shape[-2:]
    if (height, width) != (image_size, image_size):
        raise ValueError(
            f"the frame's pixel_values are {height}x{width} but this model takes {image_size}x{image_size} input "
            f"(image_size={image_size}): the processor was made for another size; load it with the model's size, "
            f"e.g. EdgeTamProcessor.from_pretrained(..., image_size={image_size}), or load the model with "
            f"image_size={height}"
        )


def check_sizes_agree(config: EdgeTamVideoConfig) -> None:
    """The video config states the input size twice (its own field and the prompt encoder's, as
    transformers' does); a config built by hand with one of them changed would fail deep inside."""
    if config.image_size != image_size_of(config):
        raise ValueError(
            f"the config's image_size ({config.image_size}) and prompt_encoder_config.image_size "
            f"({image_size_of(config)}) differ; load with from_pretrained(..., image_size=N) or build the config with "
            f"edgetam_hf.input_size.with_image_size(config, N), which set both"
        )
