"""The ONNX export of the released configuration against our PyTorch model, on the fixture's
image cases (Meta's checkpoint format, random weights).

Exporting the full model takes minutes on a CPU, so this test reads an export made beforehand:
`edgetam-hf export $EDGETAM_FIXTURES/edgetam_random_seed0.pt --out DIR`, then
`EDGETAM_ONNX_EXPORT=DIR`. Skipped unless both variables are set.

onnxruntime's kernels sum in another order than PyTorch's, and at this size the float32 rounding
of each path alone moves the logits by up to ~1e-5 of the largest logit (against a float64 run of
our model), so the two are compared with the tolerance of any two float32 paths
(`edgetam_hf.numerics`: 1e-4 plus 3e-5 of the largest logit); mask bits are compared where the
logit lies farther than that from 0.
"""

import numpy as np
import pytest
import torch

from edgetam_hf import EdgeTamConfig, EdgeTamModel, EdgeTamProcessor
from edgetam_hf.numerics import LOGIT_ABSOLUTE as TOLERANCE, RELATIVE_TO_LARGEST
from edgetam_hf.weights import load_original_state_dict, read_original_checkpoint


@pytest.fixture(scope="module")
def setup(oracle, fixtures_dir, fixture_export_folder):
    from edgetam_hf.onnx import OnnxImagePredictor

    model = EdgeTamModel(EdgeTamConfig()).eval()
    load_original_state_dict(model, read_original_checkpoint(fixtures_dir / "edgetam_random_seed0.pt"))
    _, tensors = oracle
    image = tensors["input/image_uint8"].numpy()
    processor = EdgeTamProcessor()
    pixel_values = processor(images=image)["pixel_values"]
    with torch.no_grad():
        embeddings = model.get_image_embeddings(pixel_values)
    predictor = OnnxImagePredictor(fixture_export_folder)
    encoded = predictor.encode_pixel_values(pixel_values.numpy(), image.shape[:2])
    return model, processor, image, embeddings, predictor, encoded


def _predictor_prompt(case: dict, tensors: dict) -> dict:
    """The case's prompt as OnnxImagePredictor takes it: [object][...] for one image."""
    prompt, kwargs = case["prompt"], {}
    if prompt["boxes"] is not None:
        kwargs["input_boxes"] = prompt["boxes"]
    elif prompt["box"] is not None:
        kwargs["input_boxes"] = [prompt["box"]]
    if prompt["points"] is not None:
        kwargs["input_points"], kwargs["input_labels"] = [prompt["points"]], [prompt["labels"]]
    if prompt["mask_from"] is not None:
        kwargs["input_masks"] = tensors[f"{case['name']}/in_mask_input"].numpy().reshape(1, 256, 256)
    return kwargs


@pytest.mark.parametrize("case_index", range(6))
def test_export_matches_pytorch_on_fixture_case(case_index, oracle, setup, parity_figures):
    manifest, tensors = oracle
    case = manifest["image"]["cases"][case_index]
    model, processor, image, embeddings, predictor, encoded = setup
    prompt = _predictor_prompt(case, tensors)

    # Our PyTorch path with the same prompt, through the processor's nesting: [image][object]...
    nested = {key: [value] for key, value in prompt.items() if key != "input_masks"}
    inputs = processor(original_sizes=[list(image.shape[:2])], **nested)
    model_kwargs = {key: inputs[key] for key in ("input_points", "input_labels", "input_boxes") if key in inputs}
    if "input_masks" in prompt:
        model_kwargs["input_masks"] = torch.from_numpy(prompt["input_masks"])[None]
    with torch.no_grad():
        reference = model(image_embeddings=embeddings, multimask_output=case["multimask_output"], **model_kwargs)
    ours = predictor.predict(encoded, multimask_output=case["multimask_output"], **prompt)

    expected = reference.pred_masks[0].numpy()
    tolerance = TOLERANCE + RELATIVE_TO_LARGEST * float(np.abs(expected).max())
    difference = float(np.abs(ours.low_res_logits - expected).max())
    parity_figures.append((f"onnx image low-res logits vs ours: {case['name']}", difference, tolerance))
    assert difference <= tolerance
    assert np.abs(ours.iou_scores - reference.iou_scores[0].numpy()).max() <= TOLERANCE
    upsampled = processor.post_process_masks(reference.pred_masks, inputs["original_sizes"], binarize=False)[0].numpy()
    decided = np.abs(upsampled) > tolerance
    assert np.array_equal(ours.masks[decided], (upsampled > 0)[decided])
