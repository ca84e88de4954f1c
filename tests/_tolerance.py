"""Comparisons of two float32 computation paths, with the tolerances of `edgetam_hf.numerics`."""

import torch

from edgetam_hf.numerics import LAYER_ABSOLUTE, LOGIT_ABSOLUTE, float32_tolerance


def assert_same_float32(actual: torch.Tensor, expected: torch.Tensor, absolute: float = LAYER_ABSOLUTE, msg: str = ""):
    """`actual` equals `expected` up to the rounding of two float32 paths (see `edgetam_hf.numerics`);
    `msg` names what is compared in the failure's message."""
    tolerance = float32_tolerance(expected, absolute)
    torch.testing.assert_close(actual, expected, rtol=0, atol=tolerance, msg=lambda found: f"{msg} {found}".strip())


def assert_same_logits(actual: torch.Tensor, expected: torch.Tensor, msg: str = ""):
    """The same for end-to-end logits and scores, whose floor is `LOGIT_ABSOLUTE`."""
    assert_same_float32(actual, expected, LOGIT_ABSOLUTE, msg)
