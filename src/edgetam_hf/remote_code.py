"""What a saved folder needs so that transformers loads it with `trust_remote_code=True`.

A folder carries an `auto_map` (in config.json and processor_config.json) that names classes in
one small file written next to the weights, `edgetam_hf_classes.py`, which imports them from the
installed edgetam-hf package. transformers copies that file into its module cache, checks that
its imports are installed (without edgetam-hf it says `pip install edgetam_hf`), and importing
it registers every class with the Auto classes (`__init__.py`); from then on transformers resolves
the folder's model type to our classes exactly as after `import edgetam_hf`.

Why a file that imports the package rather than copies of our modules (transformers' default
for custom models): transformers copies a flat folder of modules, and the video model imports the
`video/` sub-package, so a copy could not serve the video folder, the one `convert` writes by
default. One file also means the remote code is the tested package, never a stale copy of it.
"""

import os

CLASSES_MODULE = "edgetam_hf_classes"
CLASSES_FILE = f"{CLASSES_MODULE}.py"
_CLASSES_FILE_TEXT = f'''"""Lets transformers load this folder with trust_remote_code=True: the classes are those of
the installed edgetam-hf package (pip install edgetam-hf); importing it registers them with
transformers' Auto classes. Written by edgetam-hf's save_pretrained."""

from edgetam_hf import (  # noqa: F401
    EdgeTamConfig,
    EdgeTamImageProcessor,
    EdgeTamModel,
    EdgeTamProcessor,
    EdgeTamVideoConfig,
    EdgeTamVideoModel,
    EdgeTamVideoProcessor,
)
'''

# Per model type: the class each Auto class gives. The video folder's mask-generation model is
# the image model, which reads a video folder leaving the memory weights aside.
_AUTO_CLASSES = {
    "edgetam_hf": {
        "AutoConfig": "EdgeTamConfig",
        "AutoModel": "EdgeTamModel",
        "AutoModelForMaskGeneration": "EdgeTamModel",
        "AutoProcessor": "EdgeTamProcessor",
        "AutoImageProcessor": "EdgeTamImageProcessor",
    },
    "edgetam_hf_video": {
        "AutoConfig": "EdgeTamVideoConfig",
        "AutoModel": "EdgeTamVideoModel",
        "AutoModelForMaskGeneration": "EdgeTamModel",
        "AutoProcessor": "EdgeTamVideoProcessor",
        "AutoImageProcessor": "EdgeTamImageProcessor",
    },
}


def auto_map(model_type: str) -> dict[str, str]:
    """config.json's `auto_map` for a folder of `model_type` (`edgetam_hf` or `edgetam_hf_video`)."""
    return {auto_class: f"{CLASSES_MODULE}.{name}" for auto_class, name in _AUTO_CLASSES[model_type].items()}


def processor_auto_map(processor_class_name: str) -> dict[str, str]:
    """processor_config.json's `auto_map`: the processor itself and its image processor."""
    return {"AutoProcessor": f"{CLASSES_MODULE}.{processor_class_name}", "AutoImageProcessor": image_processor_class_path()}


def image_processor_class_path() -> str:
    return f"{CLASSES_MODULE}.EdgeTamImageProcessor"


def write_classes_file(save_directory) -> None:
    """Writes `edgetam_hf_classes.py` into `save_directory` (replacing an older one)."""
    path = os.path.join(save_directory, CLASSES_FILE)
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as file:
        file.write(_CLASSES_FILE_TEXT)
    os.replace(partial, path)


class WritesItsOwnAutoMap:
    """Mixed into our config, model and processor classes.

    transformers calls `register_for_auto_class` on a class it loaded through remote code, after
    which `save_pretrained` would copy the class's defining module (and its relative imports) into
    the folder and point `auto_map` at that copy. Our folders name `edgetam_hf_classes.py` instead
    (this module's docstring), so the call is accepted and changes nothing.
    """

    @classmethod
    def register_for_auto_class(cls, auto_class=None):
        return None
