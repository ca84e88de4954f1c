"""`export_executorch` on the tiny video model: `.pte` programs with the XNNPACK delegate whose
float32 answers equal the PyTorch graphs' to float32 rounding (`edgetam_hf.numerics`), run by
ExecuTorch's Python runtime behind the predictor; an int8 build records its precision and runs.

Skipped where the `executorch` package is missing (docs/export.md, "ExecuTorch", says how to install it).
"""

import numpy as np
import pytest
import torch

from _tolerance import assert_same_logits
from _video_tiny import single_thread, tiny_model  # noqa: F401  (single_thread is autouse)
from edgetam_hf.onnx import OnnxImagePredictor, read_manifest
from edgetam_hf.onnx.manifest import TRACKING_STEP, graph_precision, open_graph
from edgetam_hf.onnx.quantization import DEFAULT_INT8_GRAPHS, calibration_frames

pytest.importorskip("executorch")


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def float_folder(model, tmp_path_factory):
    from edgetam_hf.executorch.export import export_executorch

    return export_executorch(model, tmp_path_factory.mktemp("exports") / "fp32")


def test_image_path_matches_pytorch(model, float_folder):
    from edgetam_hf import EdgeTamModel
    from edgetam_hf.onnx.accuracy import export_accuracy

    image_model = EdgeTamModel(model.config)  # the video model's image parts, as `edgetam-hf export` loads them
    image_model.load_state_dict(model.state_dict(), strict=False)
    accuracy = export_accuracy(image_model.eval(), OnnxImagePredictor(float_folder))
    print(*accuracy.lines(), sep="\n")
    tolerance = 1e-4 + 3e-5 * accuracy.largest_logit  # edgetam_hf.numerics.float32_tolerance
    assert accuracy.max_abs_logit_difference <= tolerance


def test_tracking_step_program_matches_its_graph(model, float_folder):
    """The step on a frame with two stored memories per object and a click, against the module it was traced from."""
    from edgetam_hf.onnx.graphs import TrackingStepGraph

    manifest = read_manifest(float_folder, video=True)
    shapes = {value["name"]: value["shape"] for value in manifest["graphs"][TRACKING_STEP]["inputs"]}
    generator = torch.Generator().manual_seed(0)
    side, hidden = model.config.image_size, model.config.vision_config.fpn_hidden_size
    features = model.get_frame_features(torch.rand(1, 3, side, side, generator=generator))
    num_objects, (slots, tokens, memory_dim), pointer_slots = 3, shapes["memory_tokens"][1:], shapes["object_pointers"][1]
    mask_side = shapes["mask_input"][-1]
    valid = torch.zeros(num_objects, slots, dtype=torch.bool)
    valid[:, :2] = True
    inputs = [
        features.vision_features,
        *features.high_resolution_features,
        torch.randn(num_objects, slots, tokens, memory_dim, generator=generator),
        torch.arange(slots),
        valid,
        torch.randn(num_objects, pointer_slots, hidden, generator=generator),
        torch.linspace(0, 1, pointer_slots),
        valid[:, :1].expand(num_objects, pointer_slots).clone(),
        torch.tensor([[[30.0, 40.0], [0.0, 0.0]]] * num_objects),
        torch.tensor([[1, -1]] * num_objects),
        torch.zeros(num_objects, 1, mask_side, mask_side),
        torch.zeros(1),
        torch.ones(1),
    ]
    names = [value["name"] for value in manifest["graphs"][TRACKING_STEP]["inputs"]]
    found = open_graph(float_folder, manifest, TRACKING_STEP).run(None, {name: value.numpy() for name, value in zip(names, inputs, strict=True)})
    with torch.no_grad():
        expected = TrackingStepGraph(model).eval()(*inputs)
    for value, reference, name in zip(found, expected, ("mask_logits", "object_pointer", "object_score_logits", "memory"), strict=True):
        assert_same_logits(torch.from_numpy(value), reference, msg=name)


def test_int8_build_records_precision_and_runs(model, tmp_path):
    from edgetam_hf.executorch.export import export_executorch

    folder = export_executorch(model, tmp_path / "int8", quantize="int8", frames=calibration_frames(count=2))
    manifest = read_manifest(folder, video=True)
    for name in manifest["graphs"]:
        assert graph_precision(manifest, name) == ("int8" if name in DEFAULT_INT8_GRAPHS else "float32"), name
    predictor = OnnxImagePredictor(folder)
    prediction = predictor.predict(predictor.encode_image(np.zeros((40, 60, 3), dtype=np.uint8)), input_points=[[[10, 20]]])
    assert prediction.masks.shape == (1, 3, 40, 60)
    assert np.isfinite(prediction.low_res_logits).all()
