"""The ONNX export and its NumPy + onnxruntime runtime on a tiny model: graphs at parity with the
PyTorch model, NumPy pre- / post-processing at parity with the processor, a torch-free import,
the command line, and failed exports that leave nothing behind.

Tolerances: the graphs run the same float32 operations as PyTorch but through other kernels, so
logits agree to float rounding: 1e-4 plus 1e-5 of the largest logit (the rounding scale of float32
sums of that size). A mask bit may flip only where the logit lies within that tolerance of 0.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from _image_tiny import TINY_IMAGE_SIZE, tiny_image_model
from edgetam_hf import EdgeTamImageProcessor, EdgeTamProcessor
from edgetam_hf.cli import main
from edgetam_hf.onnx import OnnxImagePredictor, read_manifest
from edgetam_hf.onnx.image_ops import pixel_values_from_image, upsample_logits

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOLERANCE = 1e-4
RELATIVE_TO_LARGEST = 1e-5
IMAGE_HEIGHT, IMAGE_WIDTH = 120, 160


def _tolerance(reference: np.ndarray) -> float:
    return TOLERANCE + RELATIVE_TO_LARGEST * float(np.abs(reference).max())


@pytest.fixture(scope="module")
def model():
    return tiny_image_model()


@pytest.fixture(scope="module")
def model_folder(model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_image_model")
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def export_folder(model_folder, tmp_path_factory) -> Path:
    """The tiny model exported by the command line, as a user would (the slow step: ~30 s)."""
    out = tmp_path_factory.mktemp("exports") / "tiny-onnx"
    assert main(["export", str(model_folder), "--format", "onnx", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def predictor(export_folder) -> OnnxImagePredictor:
    return OnnxImagePredictor(export_folder)


@pytest.fixture(scope="module")
def processor() -> EdgeTamProcessor:
    side = TINY_IMAGE_SIZE
    image_processor = EdgeTamImageProcessor(size={"height": side, "width": side}, mask_size={"height": side // 4, "width": side // 4})
    return EdgeTamProcessor(image_processor, target_size=side)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:IMAGE_HEIGHT, 0:IMAGE_WIDTH]
    shade = (rows[..., None] * np.array([1, 0, 2]) + columns[..., None] * np.array([0, 1, 1])) % 256
    noisy = shade + rng.integers(0, 30, (IMAGE_HEIGHT, IMAGE_WIDTH, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _reference(model, processor, image, prompt: dict, multimask: bool):
    """PyTorch: the processor's prompts and our model -> (low-res logits, IoU, object scores, image-size logits)."""
    inputs = processor(images=image, **{key: [value] for key, value in prompt.items() if key != "input_masks"})
    kwargs = {key: inputs[key] for key in ("input_points", "input_labels", "input_boxes") if key in inputs}
    if "input_masks" in prompt:
        kwargs["input_masks"] = torch.from_numpy(prompt["input_masks"])[None]
    with torch.no_grad():
        output = model(pixel_values=inputs["pixel_values"], multimask_output=multimask, **kwargs)
    low_res = output.pred_masks[0].numpy()
    upsampled = processor.post_process_masks(output.pred_masks, inputs["original_sizes"], binarize=False)[0].numpy()
    return low_res, output.iou_scores[0].numpy(), output.object_score_logits[0].numpy(), upsampled, inputs["pixel_values"]


def _previous_logits(model, processor, image) -> np.ndarray:
    low_res, iou, *_ = _reference(model, processor, image, {"input_points": [[[60, 50]]]}, multimask=True)
    best = low_res[0, int(iou[0].argmax())]
    return np.clip(best, -32, 32)[None]  # (1, 64, 64), as the original feeds logits back


PROMPTS = {
    "one_click": ({"input_points": [[[60, 50]]]}, True),
    "clicks_positive_negative": ({"input_points": [[[60, 50], [100, 90]]], "input_labels": [[1, 0]]}, False),
    "box": ({"input_boxes": [[20, 15, 120, 100]]}, False),
    "box_and_click": ({"input_boxes": [[20, 15, 120, 100]], "input_points": [[[70, 60]]]}, False),
    "objects_with_ragged_clicks": ({"input_points": [[[60, 50]], [[10, 10], [150, 110], [80, 20]]], "input_labels": [[1], [1, 0, 1]]}, True),
    "three_boxes": ({"input_boxes": [[0, 0, 50, 50], [40, 30, 160, 120], [100, 10, 150, 60]]}, True),
    "click_and_mask": ({"input_points": [[[60, 50]]], "input_masks": "previous"}, False),
    "mask_alone": ({"input_masks": "previous"}, False),
}


@pytest.mark.parametrize("case", sorted(PROMPTS))
def test_graphs_match_pytorch(case, model, processor, predictor, image):
    prompt, multimask = PROMPTS[case]
    if prompt.get("input_masks") == "previous":
        prompt = {**prompt, "input_masks": _previous_logits(model, processor, image)}
    low_res, iou, object_scores, upsampled, pixel_values = _reference(model, processor, image, prompt, multimask)

    encoded = predictor.encode_pixel_values(pixel_values.numpy(), (IMAGE_HEIGHT, IMAGE_WIDTH))
    ours = predictor.predict(encoded, multimask_output=multimask, **prompt)

    tolerance = _tolerance(low_res)
    assert ours.low_res_logits.shape == low_res.shape
    np.testing.assert_allclose(ours.low_res_logits, low_res, rtol=0, atol=tolerance)
    np.testing.assert_allclose(ours.iou_scores, iou, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(ours.object_score_logits, object_scores, rtol=0, atol=_tolerance(object_scores))
    decided = np.abs(upsampled) > tolerance
    assert np.array_equal(ours.masks[decided], (upsampled > 0)[decided])


def test_preprocessing_matches_the_processor(image):
    # Downscaling (antialiased) and upscaling, RGB and grayscale, against EdgeTamImageProcessor.
    processor = EdgeTamImageProcessor(size={"height": 96, "width": 96}, mask_size={"height": 24, "width": 24})
    for picture in (image, image[:40, :50], image[..., 0]):
        expected = processor(picture, return_tensors="np")["pixel_values"]
        ours = pixel_values_from_image(picture, 96, processor.image_mean, processor.image_std)
        # Values up to ~2.6; the antialiased resize sums its taps in another order than PyTorch.
        np.testing.assert_allclose(ours, expected, rtol=0, atol=5e-5)


def test_mask_upsampling_matches_interpolate():
    logits = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32) * 20
    for size in ((120, 160), (50, 30), (64, 64)):
        expected = F.interpolate(torch.from_numpy(logits), size=size, mode="bilinear", align_corners=False).numpy()
        np.testing.assert_allclose(upsample_logits(logits, size), expected, rtol=0, atol=_tolerance(expected))


def test_image_in_masks_out_matches_pytorch(model, processor, predictor, image):
    """From the uint8 image: NumPy preprocessing + graphs + NumPy upsampling against the PyTorch path."""
    prompt = {"input_points": [[[60, 50]], [[100, 90]]]}
    low_res, _, _, upsampled, _ = _reference(model, processor, image, prompt, multimask=True)
    ours = predictor.predict(predictor.encode_image(Image.fromarray(image)), **prompt)
    # The pixels agree to ~1e-6 (test above); the encoder carries that into the logits, so allow 10x the rounding.
    tolerance = 10 * _tolerance(low_res)
    np.testing.assert_allclose(ours.low_res_logits, low_res, rtol=0, atol=tolerance)
    decided = np.abs(upsampled) > tolerance
    assert np.array_equal(ours.masks[decided], (upsampled > 0)[decided])


def test_manifest_describes_dynamic_graphs(export_folder):
    import onnx

    manifest = read_manifest(export_folder)
    assert manifest["opset"] == 18 and manifest["dtype"] == "float32"
    assert manifest["preprocessing"]["image_size"] == TINY_IMAGE_SIZE
    encoder, decoder = manifest["graphs"]["image_encoder"], manifest["graphs"]["prompt_mask_decoder"]
    assert encoder["inputs"] == [{"name": "pixel_values", "dtype": "float32", "shape": ["batch", 3, 256, 256]}]
    shapes = {value["name"]: value["shape"] for value in decoder["inputs"] + decoder["outputs"]}
    assert shapes["point_coords"] == ["num_objects", "num_points", 2]
    assert shapes["point_labels"] == ["num_objects", "num_points"]
    assert shapes["mask_input"] == ["num_objects", 1, 64, 64]
    assert shapes["multimask_logits"] == ["num_objects", 3, 64, 64]
    for graph in (encoder, decoder):
        onnx.checker.check_model(str(export_folder / graph["file"]), full_check=True)


def test_runtime_imports_and_runs_without_torch(export_folder, model, processor, image, tmp_path):
    np.save(tmp_path / "image.npy", image)
    script = textwrap.dedent(
        f"""
        import importlib.abc, json, sys
        import numpy as np

        class BlockTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers"):
                    raise ImportError(f"{{name}} is blocked in this test")
                return None

        sys.meta_path.insert(0, BlockTorch())
        from edgetam_hf.onnx import OnnxImagePredictor

        predictor = OnnxImagePredictor({str(export_folder)!r})
        prediction = predictor.predict(
            predictor.encode_image(np.load({str(tmp_path / "image.npy")!r})), input_points=[[[60, 50]]]
        )
        assert not any(name.split(".")[0] in ("torch", "transformers") for name in sys.modules)
        print(json.dumps(prediction.low_res_logits.tolist()))
        """
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=120)
    assert completed.returncode == 0, completed.stderr
    low_res, *_ = _reference(model, processor, image, {"input_points": [[[60, 50]]]}, multimask=True)
    ours = np.array(json.loads(completed.stdout), dtype=np.float32)
    np.testing.assert_allclose(ours, low_res, rtol=0, atol=10 * _tolerance(low_res))


def test_segment_command_on_the_export_writes_the_pytorch_masks(model_folder, export_folder, image, tmp_path):
    image_path = tmp_path / "image.png"
    Image.fromarray(image).save(image_path)
    prompts = ["--object", "1", "--point", "60,50", "--object", "2", "--box", "20,15,120,100"]
    for name, source in (("torch", model_folder), ("onnx", export_folder)):
        # float32: the graphs' precision (the default, auto, is bfloat16 where the CPU has it)
        assert main(["segment", str(image_path), *prompts, "--model", str(source), "--device", "cpu", "--dtype", "float32",
                     "--out", str(tmp_path / name)]) == 0
    for obj_id in (1, 2):
        expected = np.asarray(Image.open(tmp_path / "torch" / f"mask_{obj_id}.png"))
        ours = np.asarray(Image.open(tmp_path / "onnx" / f"mask_{obj_id}.png"))
        assert (expected != ours).mean() <= 1e-4  # <= 0.01 % of the pixels
    chosen = [json.loads((tmp_path / name / "scores.json").read_text())["objects"] for name in ("torch", "onnx")]
    assert [entry["chosen_mask"] for entry in chosen[0]] == [entry["chosen_mask"] for entry in chosen[1]]


def test_malformed_checkpoint_fails_and_leaves_nothing(model, tmp_path):
    from edgetam_hf.onnx.export import export_onnx

    checkpoint = tmp_path / "checkpoints" / "edgetam.pt"
    checkpoint.parent.mkdir()
    torch.save({"model": model.state_dict()}, checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:4096])  # truncated, as by an interrupted download
    exports = tmp_path / "exports"
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        export_onnx(checkpoint, exports / "out")
    assert not (exports / "out").exists()
    assert not exports.exists() or not any(exports.iterdir())

    # The command line says so in one line and exits with status 2.
    assert main(["export", str(checkpoint), "--out", str(exports / "cli")]) == 2
    assert not (exports / "cli").exists()


def test_failure_during_export_removes_the_partial_folder(model, tmp_path, monkeypatch):
    from edgetam_hf.onnx import export as export_module

    def fail_after_writing(*args, **kwargs):
        Path(args[2]).write_bytes(b"half a graph")
        raise OSError("disk full")

    monkeypatch.setattr(export_module.torch.onnx, "export", fail_after_writing)
    with pytest.raises(OSError, match="disk full"):
        export_module.export_onnx(model, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_named(predictor, tmp_path):
    encoded = predictor.encode_pixel_values(np.zeros((1, 3, 256, 256), dtype=np.float32), (IMAGE_HEIGHT, IMAGE_WIDTH))
    with pytest.raises(ValueError, match="input_points"):
        predictor.predict(encoded, input_points=[[[500, 50]]])
    with pytest.raises(ValueError, match="input_boxes"):
        predictor.predict(encoded, input_boxes=[[30, 30, 10, 10]])
    with pytest.raises(ValueError, match="at least one prompt"):
        predictor.predict(encoded)
    with pytest.raises(ValueError, match="input_masks"):
        predictor.predict(encoded, input_masks=np.zeros((1, 32, 32)))
    with pytest.raises(ValueError, match="pixel_values"):
        predictor.encode_pixel_values(np.zeros((1, 3, 100, 100), dtype=np.float32), (1, 1))
    with pytest.raises(ValueError, match="no manifest.json"):
        OnnxImagePredictor(tmp_path)
    from edgetam_hf.onnx.export import export_onnx

    with pytest.raises(ValueError, match="already exists"):
        export_onnx(tiny_image_model(), tmp_path)
