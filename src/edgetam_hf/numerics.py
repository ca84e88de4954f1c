"""When two float32 computations of one quantity count as the same result.

Two paths that are equal in mathematics give different last bits: a batched and a per-object
computation, a model whose weights were read from a folder and the same weights already in memory,
this package and Meta's code, one CPU and another. Matrix and convolution kernels sum in an order
that depends on the instruction set (AVX2, AVX-512, ...), the thread count, the shapes and even
the alignment of the buffers, and float32 rounds every partial sum to 24 bits (2**-24 = 6e-8 of
its size). Those errors add up over a dot product's terms and over the network's ~40 layers, and
they scale with the largest values in play, not with the entry compared: a logit near 0 that was
summed from terms of size 50 carries the error of size 50.

So a comparison allows `absolute + relative * max |reference|`:
- `RELATIVE_TO_LARGEST = 3e-5`: over the whole network, Meta's code on an AVX2 CPU differs from
  its stored run on an AVX-512 one by up to 5.4e-6 of the largest logit (3.5e-4 on logits of 65,
  see the fixture README), and this package on plain C++ / SSE4.1 kernels (ATEN_CPU_CAPABILITY=
  default, ONEDNN_MAX_CPU_ISA=SSE41) by up to 1.5e-5 (9.7e-4). onnxruntime running our ONNX
  export rounds no worse: on the fixture's image cases it is as close to a float64 run of our
  model as our float32 PyTorch path is (both up to ~1e-5 of the largest logit), and the two differ
  by up to 1.5e-5 (9.9e-4 on logits of 65), as much as our PyTorch path differs from itself with
  folded BatchNorms or channels-last convolutions (docs/export.md). 3e-5 covers these with a
  margin and is still ~1,000 times below what a wrong weight or branch changes.
- `absolute`: a floor for tensors that are small everywhere. End-to-end logits and scores use
  `LOGIT_ABSOLUTE = 1e-4`; a single layer's output uses `LAYER_ABSOLUTE = 1e-6`.

Exact equality is right only where no arithmetic differs: the same code on the same tensors in
one process, or values selected or copied rather than computed.
"""

import torch

RELATIVE_TO_LARGEST = 3e-5
LOGIT_ABSOLUTE = 1e-4
LAYER_ABSOLUTE = 1e-6


def float32_tolerance(reference: torch.Tensor, absolute: float = LOGIT_ABSOLUTE) -> float:
    """The largest difference from `reference` that rounding alone explains (see the module docstring)."""
    return absolute + RELATIVE_TO_LARGEST * reference.detach().abs().max().item()


def max_abs_difference(found: torch.Tensor, expected: torch.Tensor) -> float:
    """max |found - expected| in float64, so the difference itself adds no rounding."""
    return (found.detach().double() - expected.detach().double()).abs().max().item()
