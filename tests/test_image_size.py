"""`image_size` chosen at load: every size-dependent part follows, mismatched processors and sizes
a model cannot take are refused with messages that name the sizes."""

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch

from _image_tiny import tiny_image_model
from _video_tiny import VIDEO_HEIGHT, VIDEO_WIDTH, tiny_model
from edgetam_hf import EdgeTamConfig, EdgeTamModel, EdgeTamProcessor, EdgeTamVideoConfig, EdgeTamVideoModel
from edgetam_hf.input_size import check_image_size, supported_image_sizes, with_image_size
from edgetam_hf.video_processing import EdgeTamVideoProcessor

BUNDLED_IMAGE = Path(str(files("edgetam_hf") / "tiny_model"))
BUNDLED_VIDEO = Path(str(files("edgetam_hf") / "tiny_video_model"))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("image")
    tiny_image_model().save_pretrained(folder)  # 256 input
    return folder


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("video")
    tiny_model().save_pretrained(folder)  # 128 input
    return folder


def _image(height: int = 90, width: int = 120) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_the_released_sizes():
    assert supported_image_sizes(EdgeTamVideoConfig()) == [256, 512, 768, 1024]
    assert supported_image_sizes(EdgeTamConfig()) == list(range(64, 1025, 32))


def test_at_the_released_size_nothing_changes():
    for config in (EdgeTamConfig(), EdgeTamVideoConfig()):
        assert with_image_size(config, 1024).to_dict() == config.to_dict()


def test_every_size_dependent_field_follows():
    config = with_image_size(EdgeTamVideoConfig(), 512)
    assert config.image_size == config.prompt_encoder_config.image_size == 512
    assert config.vision_config.backbone_feature_sizes == [[128, 128], [64, 64], [32, 32]]
    assert config.memory_attention_rope_feat_sizes == [32, 32]
    assert config.memory_attention_rope_k_sizes == [16, 16]  # the perceiver's window grid does not change
    assert EdgeTamVideoConfig().image_size == 1024  # a copy


@pytest.mark.parametrize(
    "config, image_size, message",
    [
        (EdgeTamVideoConfig(), 640, r"image_size=640: .* a multiple of 256 \(the 2D spatial perceiver .*16x16 equal windows\): one of \[256, 512, 768, 1024\]"),
        (EdgeTamConfig(), 1000, r"image_size=1000: .* a multiple of 32 \(the trunk's stride\)"),
        (EdgeTamConfig(), 2048, r"image_size=2048: .* from 64 to 1024"),
        (EdgeTamConfig(), "512", r"image_size='512': .* an int"),
    ],
)
def test_a_size_the_model_cannot_take_is_refused(config, image_size, message):
    with pytest.raises(ValueError, match=message):
        check_image_size(config, image_size)


def test_a_size_the_model_cannot_take_is_refused_at_load(video_folder):
    with pytest.raises(ValueError, match=r"image_size=80: .*EdgeTamVideoConfig .* one of \[64, 96, 128"):
        EdgeTamVideoModel.from_pretrained(video_folder, image_size=80)


@torch.no_grad()
def test_the_image_model_runs_at_another_size(image_folder):
    model = EdgeTamModel.from_pretrained(image_folder, image_size=128)
    assert model.config.prompt_encoder_config.image_size == 128
    assert EdgeTamModel.from_pretrained(image_folder).config.prompt_encoder_config.image_size == 256
    processor = EdgeTamProcessor().for_image_size(128)
    inputs = processor(images=_image(), input_boxes=[[[10, 10, 80, 60]]])
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 128, 128)
    outputs = model(**{key: inputs[key] for key in ("pixel_values", "input_boxes")})
    assert tuple(outputs.pred_masks.shape) == (1, 1, 3, 32, 32)
    assert tuple(outputs.image_embeddings[-1].shape) == (1, 32, 8, 8)
    masks = processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"])
    assert tuple(masks[0].shape) == (1, 3, 90, 120)


def test_the_processor_follows_the_size_at_load(image_folder):
    EdgeTamProcessor().save_pretrained(image_folder / "processor")
    processor = EdgeTamProcessor.from_pretrained(image_folder / "processor", image_size=512)
    assert processor.target_size == 512
    assert processor.image_processor.size == {"height": 512, "width": 512}
    assert processor.image_processor.mask_size == {"height": 128, "width": 128}
    assert EdgeTamProcessor.from_pretrained(image_folder / "processor").target_size == 1024


def test_a_processor_of_another_size_is_refused_naming_both(image_folder):
    model = EdgeTamModel.from_pretrained(image_folder, image_size=128)
    inputs = EdgeTamProcessor()(images=_image(), input_boxes=[[[10, 10, 80, 60]]])  # 1024
    with pytest.raises(ValueError, match=r"pixel_values are 1024x1024 but this model takes 128x128 input"):
        model(pixel_values=inputs["pixel_values"], input_boxes=inputs["input_boxes"])


def _frames(count: int = 3) -> list[np.ndarray]:
    return [_image(VIDEO_HEIGHT, VIDEO_WIDTH) for _ in range(count)]


@torch.no_grad()
def test_the_video_model_tracks_at_another_size(video_folder):
    model = EdgeTamVideoModel.from_pretrained(video_folder, image_size=64)
    assert model.config.image_size == model.config.prompt_encoder_config.image_size == 64
    processor = EdgeTamVideoProcessor().for_image_size(64)
    session = processor.init_video_session(_frames())
    processor.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=[1, 2], input_points=[[[[40, 30]], [[90, 60]]]])
    results = list(model.propagate_in_video_iterator(session))
    assert len(results) == 3
    assert all(tuple(result.pred_masks.shape) == (2, 1, 16, 16) for result in results)


@torch.no_grad()
def test_a_video_processor_of_another_size_is_refused_naming_both(video_folder):
    model = EdgeTamVideoModel.from_pretrained(video_folder, image_size=64)
    processor = EdgeTamVideoProcessor().for_image_size(128)
    session = processor.init_video_session(None)
    frame = processor(images=_frames(1)[0])["pixel_values"]
    processor.add_inputs_to_inference_session(
        session, frame_idx=0, obj_ids=1, input_points=[[[[40, 30]]]], original_size=(VIDEO_HEIGHT, VIDEO_WIDTH)
    )
    with pytest.raises(ValueError, match=r"pixel_values are 128x128 but this model takes 64x64 input \(image_size=64\)"):
        model(session, frame=frame)


@torch.no_grad()
@pytest.mark.parametrize("model_class, folder", [(EdgeTamModel, BUNDLED_IMAGE), (EdgeTamVideoModel, BUNDLED_VIDEO)])
def test_the_bundled_tiny_models_load_at_half_their_size(model_class, folder):
    trained = model_class.from_pretrained(folder).config.prompt_encoder_config.image_size
    model = model_class.from_pretrained(folder, image_size=trained // 2)
    assert model.config.prompt_encoder_config.image_size == trained // 2
    features = model.get_frame_features(torch.zeros(1, 3, trained // 2, trained // 2)) if model_class is EdgeTamVideoModel else None
    if features is not None:
        assert tuple(features.vision_features.shape[-2:]) == (trained // 32, trained // 32)


@torch.no_grad()
def test_the_original_checkpoint_loads_at_another_size(fixtures_dir):
    checkpoint = fixtures_dir / "edgetam_random_seed0.pt"
    model = EdgeTamVideoModel.from_pretrained(checkpoint, image_size=512)
    assert model.config.image_size == model.config.prompt_encoder_config.image_size == 512
    features = model.get_frame_features(torch.zeros(1, 3, 512, 512))
    assert tuple(features.vision_features.shape) == (1, 256, 32, 32)
    assert EdgeTamModel.from_pretrained(checkpoint, image_size=768).config.prompt_encoder_config.image_size == 768


def test_the_cli_takes_image_size(image_folder, tmp_path, capsys):
    from PIL import Image

    from edgetam_hf.cli import main

    image_path = tmp_path / "image.png"
    Image.fromarray(_image()).save(image_path)
    out = tmp_path / "segment"
    assert main(["segment", str(image_path), "--model", str(image_folder), "--device", "cpu", "--image-size", "128",
                 "--dtype", "float32", "--out", str(out), "--point", "40,30"]) == 0
    assert (out / "masks.png").exists()
    capsys.readouterr()
    assert main(["segment", str(image_path), "--model", str(image_folder), "--image-size", "100", "--out", str(tmp_path / "x"),
                 "--point", "40,30"]) != 0
    assert "edgetam-hf segment: --image-size=100: " in capsys.readouterr().err


def test_the_export_command_takes_image_size(image_folder, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from edgetam_hf.cli import main
    from edgetam_hf.numerics import LOGIT_ABSOLUTE, RELATIVE_TO_LARGEST
    from edgetam_hf.onnx import OnnxImagePredictor, read_manifest

    out = tmp_path / "onnx-128"
    assert main(["export", str(image_folder), "--image-size", "128", "--out", str(out)]) == 0
    assert read_manifest(out)["preprocessing"]["image_size"] == 128
    from PIL import Image

    image = _image()
    predictor = OnnxImagePredictor(out)
    predicted = predictor.predict(predictor.encode_image(Image.fromarray(image)), input_points=[[[40, 30]]])
    model = EdgeTamModel.from_pretrained(image_folder, image_size=128)
    inputs = EdgeTamProcessor().for_image_size(128)(images=image, input_points=[[[[40, 30]]]])
    with torch.no_grad():
        expected = model(pixel_values=inputs["pixel_values"], input_points=inputs["input_points"]).pred_masks[0].numpy()
    assert predicted.low_res_logits.shape == expected.shape == (1, 3, 32, 32)
    # NumPy preprocessing differs from the processor's by ~1e-6, which the encoder carries into the
    # logits: 10x the rounding, as tests/test_onnx_export.py allows for image-in, masks-out.
    tolerance = 10 * (LOGIT_ABSOLUTE + RELATIVE_TO_LARGEST * float(np.abs(expected).max()))
    np.testing.assert_allclose(predicted.low_res_logits, expected, rtol=0, atol=tolerance)


def test_a_video_config_whose_two_sizes_differ_is_refused():
    with pytest.raises(ValueError, match=r"image_size \(512\) and prompt_encoder_config.image_size \(1024\) differ"):
        EdgeTamVideoModel(EdgeTamVideoConfig(image_size=512))


def test_the_auto_classes_take_image_size(video_folder):
    from transformers import AutoConfig, AutoModel

    model = AutoModel.from_pretrained(video_folder, image_size=64)
    assert isinstance(model, EdgeTamVideoModel)
    assert model.config.image_size == model.config.prompt_encoder_config.image_size == 64
    assert AutoConfig.from_pretrained(video_folder, image_size=96).prompt_encoder_config.image_size == 96
