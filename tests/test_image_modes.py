"""Images of more than 8 bits a channel (16-bit PNGs, 32-bit and float TIFFs) are read as what they
show, in EdgeTamProcessor and on the command line, or refused with a message: PIL's
`convert("RGB")` would clip them to a white image that the model segments without a word."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _tolerance import assert_same_float32
from _video_tiny import model_folder, single_thread, video_frames  # noqa: F401  (fixtures)
from edgetam_hf import EdgeTamProcessor
from edgetam_hf.cli import main
from edgetam_hf.image_modes import to_rgb8


def _grey16() -> np.ndarray:
    """(96, 128) uint16 spread over the whole 16-bit range, mostly far above 255."""
    grey8 = np.asarray(Image.fromarray(video_frames()[0]).convert("L"), dtype=np.uint16)
    return grey8 * 257


def test_the_processor_scales_a_16_bit_image_from_its_full_range():
    grey16 = _grey16()
    processor = EdgeTamProcessor()
    from_png_mode = processor(images=Image.fromarray(grey16))["pixel_values"]
    from_unit_floats = processor(images=(grey16 / 65535).astype(np.float32))["pixel_values"]
    assert Image.fromarray(grey16).mode == "I;16"
    assert_same_float32(from_png_mode, from_unit_floats)


def test_a_32_bit_image_within_16_bits_and_a_float_image_read_as_their_8_bit_twins():
    grey16 = _grey16()
    expected = Image.fromarray((grey16 // 257).astype(np.uint8)).convert("RGB")
    for image in (Image.fromarray(grey16.astype(np.int32)), Image.fromarray((grey16 / 65535).astype(np.float32))):
        np.testing.assert_array_equal(np.asarray(to_rgb8(image)), np.asarray(expected), err_msg=image.mode)


@pytest.mark.parametrize(
    ("values", "message"),
    [(np.full((4, 4), 2.5, np.float32), "mode F"), (np.full((4, 4), 70000, np.int32), "mode I")],
)
def test_a_range_that_has_no_8_bit_scale_is_refused(values, message):
    with pytest.raises(ValueError, match=f"images: .*{message}.*values from"):
        EdgeTamProcessor()(images=Image.fromarray(values))


def test_segment_reads_a_16_bit_png_as_its_8_bit_twin(model_folder, tmp_path):  # noqa: F811
    grey16 = _grey16()
    Image.fromarray(grey16).save(tmp_path / "sixteen.png")
    Image.fromarray((grey16 // 257).astype(np.uint8)).save(tmp_path / "eight.png")
    written = {}
    for name in ("sixteen", "eight"):
        out = tmp_path / f"out_{name}"
        argv = ["segment", tmp_path / f"{name}.png", "--point", "30,30", "--model", model_folder, "--device", "cpu", "--out", out]
        assert main([str(arg) for arg in argv]) == 0
        written[name] = np.asarray(Image.open(Path(out) / "masks.png"))
    np.testing.assert_array_equal(written["sixteen"], written["eight"])
