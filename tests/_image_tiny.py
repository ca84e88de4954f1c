"""A tiny EdgeTamModel with seeded random weights, shared by the image-model tests."""

import torch

from _reference import randomise_
from edgetam_hf import EdgeTamConfig, EdgeTamModel

TINY_IMAGE_SIZE = 256  # image embedding 16x16, masks 64x64


def tiny_config(image_size: int = TINY_IMAGE_SIZE, **overrides) -> EdgeTamConfig:
    hidden = 32
    return EdgeTamConfig(
        vision_config={"backbone_embed_dims": [16, 16, 32, 32], "backbone_depths": [1, 1, 1, 1], "fpn_hidden_size": hidden},
        prompt_encoder_config={"hidden_size": hidden, "image_size": image_size},
        mask_decoder_config={"hidden_size": hidden, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
        **overrides,
    )


def tiny_image_model() -> EdgeTamModel:
    torch.manual_seed(0)
    model = EdgeTamModel(tiny_config()).eval()
    randomise_(model, torch.Generator().manual_seed(1))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # a variance must stay positive
                module.running_var.uniform_(0.5, 1.5)
    return model
