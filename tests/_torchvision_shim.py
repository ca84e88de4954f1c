"""Make this workplace's torchvision wheel importable for the reference-model tests.

The only torchvision wheel that matches torch 2.13.0 on the registry is a CUDA build whose C
operators cannot load next to the CPU torch, and its import then dies registering fake kernels
for `torchvision::nms` / `torchvision::qnms`. timm (the reference RepViT) and transformers' built-in
EdgeTAM (a timm backbone) need `import torchvision` to succeed, and none of them calls those
operators. Declaring the two schemas first lets the pure-Python part import. Where torchvision
imports normally (its C operators loaded), nothing is changed.
"""

import importlib.util
import sys

import torch

_OPERATOR_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def install() -> None:
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return
    try:
        import torchvision  # noqa: F401
    except RuntimeError as error:
        if "torchvision::nms does not exist" not in str(error):
            raise
        for name in [name for name in sys.modules if name.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        for name, schema in _OPERATOR_SCHEMAS.items():
            torch.library.define(f"torchvision::{name}", schema)
        import torchvision  # noqa: F401
