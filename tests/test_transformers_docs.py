"""The Python snippets of transformers' model docs, run on our classes and on transformers' own.

Each doc's snippets (tests/data/transformers_docs/, verbatim from transformers' docs) run in order
in one namespace twice: with our class names and a tiny folder we converted, and with transformers'
classes on a copy of that folder (the same weights). The only other edits are to the environment:
the Hub id becomes the folder, image URLs become local synthetic images of sizes that hold the
docs' prompts, and `device=0` becomes the CPU. After every snippet the outputs it made must have
the same keys, shapes and dtypes in both runs.

Left out: edgetam.md's first snippet, the mask-generation pipeline on the 1200x1800 image (1,024
prompts, each mask upsampled to the image: minutes on a CPU); test_mask_generation.py runs the
pipeline on our classes.
"""

import json
import re
import sys
import types
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgetam_hf import EdgeTamConfig, EdgeTamImageProcessor, EdgeTamModel, EdgeTamProcessor

DOCS = Path(__file__).parent / "data" / "transformers_docs"
HUB_IDS = ("yonigozlan/edgetam-1",)
SIDE = 256  # the model's input square: image embedding 16x16, masks 64x64
# (height, width) of the docs' images, large enough for the clicks and boxes they place
IMAGE_SIZES = {"truck.jpg": (1200, 1800), "dog-sam.png": (900, 1200), "groceries.jpg": (480, 640)}
# Our classes for transformers' names (modules and names), the rest of the code unchanged.
OUR_NAMES = {"from transformers import Sam2Processor, EdgeTamModel": "from edgetam_hf import EdgeTamProcessor, EdgeTamModel",
             "Sam2Processor": "EdgeTamProcessor"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Our folder (our config.json and processor) and transformers' copy: the same weights, the
    config's model type transformers' own, and transformers' Sam2 processor."""
    import transformers

    hidden = 32
    config = EdgeTamConfig(
        # The trunk is the released repvit_m1 (the one trunk transformers' config can describe).
        vision_config={"fpn_hidden_size": hidden, "backbone_feature_sizes": [[64, 64], [32, 32], [16, 16]]},
        prompt_encoder_config={"hidden_size": hidden, "image_size": SIDE},
        mask_decoder_config={"hidden_size": hidden, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
    )
    torch.manual_seed(0)
    model = EdgeTamModel(config).eval()
    ours, theirs = tmp_path_factory.mktemp("ours"), tmp_path_factory.mktemp("transformers")
    sizes = {"size": {"height": SIDE, "width": SIDE}, "mask_size": {"height": SIDE // 4, "width": SIDE // 4}}
    for folder in (ours, theirs):
        model.save_pretrained(folder)
    EdgeTamProcessor(EdgeTamImageProcessor(**sizes)).save_pretrained(ours)
    transformers.Sam2Processor(transformers.Sam2ImageProcessor(**sizes), target_size=SIDE).save_pretrained(theirs)
    config_path = theirs / "config.json"
    config_dict = json.loads(config_path.read_text())
    config_dict.pop("auto_map")
    config_path.write_text(json.dumps(dict(config_dict, model_type="edgetam")))
    images = tmp_path_factory.mktemp("images")
    generator = np.random.default_rng(0)
    for name, (height, width) in IMAGE_SIZES.items():
        Image.fromarray(generator.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(images / f"{name}.png")
    return {"ours": ours, "transformers": theirs, "images": images}


# (doc, index of the snippet) not run here, see the module docstring.
LEFT_OUT = {("edgetam.md", 0)}


def snippets(doc: str) -> list[str]:
    """The doc's ```python blocks, without the printed output lines the docs show after a print."""
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / doc).read_text(), flags=re.DOTALL)
    return [_without_printed_output(block) for index, block in enumerate(blocks) if (doc, index) not in LEFT_OUT]


def _without_printed_output(block: str) -> str:
    kept, previous = [], ""
    for line in block.splitlines():
        if previous.startswith("print(") and not _compiles(line):
            continue  # e.g. "Generated 3 masks with shape torch.Size([1, 3, 1200, 1800])"
        kept.append(line)
        previous = line
    return "\n".join(kept)


def _compiles(line: str) -> bool:
    try:
        compile(line, "<line>", "exec")
    except SyntaxError:
        return False
    return True


def _for_environment(code: str, folder: Path, images: Path) -> str:
    for hub_id in HUB_IDS:
        code = code.replace(f'"{hub_id}"', repr(str(folder)))
    code = re.sub(r"Image\.open\(requests\.get\((\w+), stream=True\)\.raw\)", r"Image.open(\1)", code)
    code = re.sub(r'"https://[^"]*/([^/"]+)"', lambda m: repr(str(images / f"{m.group(1)}.png")), code)
    return code.replace("device=0", 'device="cpu"')


def signature(value):
    """Keys, shapes and dtypes of what a snippet made (values themselves differ: random weights)."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype)
    if isinstance(value, Mapping):  # ModelOutput, BatchFeature, pipeline outputs
        return {key: signature(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [signature(item) for item in value]
    return type(value).__name__


def _run(doc: str, side: str, folders: dict) -> list[dict]:
    namespace: dict = {}
    made = []
    for code in snippets(doc):
        if side == "ours":
            for theirs, ours in OUR_NAMES.items():
                code = code.replace(theirs, ours)
        before = dict(namespace)
        with torch.no_grad():
            exec(compile(_for_environment(code, folders[side], folders["images"]), doc, "exec"), namespace)
        changed = {
            name: value for name, value in namespace.items()
            if isinstance(value, (torch.Tensor, Mapping, list)) and not name.startswith("__") and before.get(name) is not value
        }
        made.append({name: signature(value) for name, value in changed.items()})
    return made


@pytest.mark.parametrize("doc", ["edgetam.md"])
def test_doc_snippets_make_what_transformers_makes(doc, folders, monkeypatch):
    # The snippets import requests to download images; they read local files here instead.
    monkeypatch.setitem(sys.modules, "requests", types.ModuleType("requests"))
    ours, theirs = _run(doc, "ours", folders), _run(doc, "transformers", folders)
    for index, (our_values, their_values) in enumerate(zip(ours, theirs, strict=True)):
        assert our_values, f"{doc} snippet {index} made no outputs to compare"
        assert our_values == their_values, f"{doc} snippet {index}"
