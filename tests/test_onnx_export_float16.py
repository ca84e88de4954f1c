"""`--dtype float16` export of the tiny video model: its graphs hold float16, and the accuracy
figures `edgetam-hf export` prints (the image cases and tracking on the sample clip, against the
float32 PyTorch model) stay within float16's rounding (see `_tolerance.FLOAT16_RELATIVE_TO_LARGEST`).

A mask bit may flip where a logit lies within that tolerance of 0: along the masks' edges, which at
the tiny model's 32x32 low resolution, upsampled, are a wide band; at most 1 % of the pixels.
"""

import pytest

from _tolerance import FLOAT16_RELATIVE_TO_LARGEST
from _video_tiny import single_thread, tiny_model  # noqa: F401  (single_thread is autouse)

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

MASK_PIXELS_DIFFERING = 0.01


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_video_model")
    tiny_model().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def export_folder(model_folder, tmp_path_factory):
    from edgetam_hf.modeling_video import EdgeTamVideoModel
    from edgetam_hf.onnx.export import export_onnx

    return export_onnx(EdgeTamVideoModel.from_pretrained(model_folder), tmp_path_factory.mktemp("exports") / "fp16", dtype="float16")


def test_float16_export_holds_float16_graphs(export_folder):
    from edgetam_hf.onnx import read_manifest

    manifest = read_manifest(export_folder, video=True)
    assert manifest["dtype"] == "float16"
    for name in ("image_encoder", "tracking_step", "mask_prompt"):
        inputs = {value["name"]: value["dtype"] for value in manifest["graphs"][name]["inputs"]}
        assert inputs["vision_features" if name != "image_encoder" else "pixel_values"] == "float16", name


def test_float16_export_accuracy_is_within_float16_rounding(model_folder, export_folder):
    from edgetam_hf.modeling import EdgeTamModel
    from edgetam_hf.modeling_video import EdgeTamVideoModel
    from edgetam_hf.onnx.accuracy import export_accuracy, video_export_accuracy
    from edgetam_hf.onnx.predictor import OnnxImagePredictor

    image = export_accuracy(EdgeTamModel.from_pretrained(model_folder), OnnxImagePredictor(export_folder))
    video = video_export_accuracy(EdgeTamVideoModel.from_pretrained(model_folder), export_folder)
    for line in image.lines() + video.lines():  # the figures `edgetam-hf export --dtype float16` prints
        print(line)
    for accuracy in (image, video):
        assert accuracy.max_abs_logit_difference <= FLOAT16_RELATIVE_TO_LARGEST * accuracy.largest_logit
        assert accuracy.mask_pixels_differing <= MASK_PIXELS_DIFFERING
    assert image.max_abs_iou_difference <= FLOAT16_RELATIVE_TO_LARGEST  # IoU scores lie in [0, 1]
