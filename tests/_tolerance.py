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


# float16 keeps 11 significant bits: every value a float16 graph stores (weights, activations) is
# off by up to 2**-11 = 4.9e-4 of its size, and the errors of successive roundings add up through
# the network. The logits of the tiny models pass through a few dozen such roundings, so a float16
# export may be off by that many times 2**-11 of the largest logit: FLOAT16_RELATIVE_TO_LARGEST
# allows 64 (3.1 %). A wrong weight, a missing cast or an overflow moves logits by their own size.
FLOAT16_UNIT_ROUNDOFF = 2.0**-11
FLOAT16_RELATIVE_TO_LARGEST = 64 * FLOAT16_UNIT_ROUNDOFF
