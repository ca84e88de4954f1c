"""Meta's EdgeTAM checkpoint -> a `save_pretrained` folder, its verification and its upload.

- `convert.py`: `convert_checkpoint` maps the weights and writes the folder (config.json, which
  transformers' EdgeTam classes read too, see loading.py; model.safetensors; the processor config;
  a model card) through `staging.py`: into a hidden temporary sibling, renamed into place only when
  everything succeeded (verification included, when asked), so a refusal or a failure leaves
  nothing behind.
- `verification.py`: `verify_folder` runs the folder's models against the mapped weights and,
  when Meta's `sam2` package is importable, against the original predictor.
- `model_card.py`: the README.md with the Hub metadata; `hub.py`: `push_to_hub`.

`--model image` writes the image model only. `video` and `both` (the default) write the same
folder: every weight, with the video model's config; the image model loads it too (leaving the
memory weights aside), as transformers' `facebook/EdgeTAM` serves both `EdgeTamModel` and
`EdgeTamVideoModel`, and the verification checks both models on it.
"""

from .convert import MODEL_CHOICES, ConversionResult, convert_checkpoint, save_model_folder
from .hub import HubPushError, push_to_hub
from .model_card import model_card
from .verification import Check, VerificationError, VerificationReport, verify_folder

__all__ = [
    "MODEL_CHOICES",
    "Check",
    "ConversionResult",
    "HubPushError",
    "VerificationError",
    "VerificationReport",
    "convert_checkpoint",
    "model_card",
    "push_to_hub",
    "save_model_folder",
    "verify_folder",
]
