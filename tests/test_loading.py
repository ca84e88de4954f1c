"""`from_pretrained` across formats: our folders, transformers' built-in EdgeTam folders (both
ways), Meta's original `.pt`; config.json translation; strict refusals that name the weights.

No network: every folder is saved here first.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from _reference import randomised_transformers_edgetam, require_transformers_edgetam, transformers_video_model
from edgetam_hf import EdgeTamConfig, EdgeTamModel, EdgeTamVideoConfig
from edgetam_hf.loading import TENSOR_ALIGNMENT_BYTES
from edgetam_hf.modeling_video import EdgeTamVideoModel
from edgetam_hf.weights import load_original_state_dict, read_original_checkpoint
from _tolerance import assert_same_float32, assert_same_logits

REPVIT_M1_BACKBONE = {
    "model_type": "timm_wrapper",
    "architecture": "repvit_m1",
    "model_args": {"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    "num_classes": 2,
    "label_names": ["LABEL_0", "LABEL_1"],
}


def _architecture(config_dict: dict) -> dict:
    """A config's fields without what saving and loading set (path, dtype, versions, auto_map)."""
    bookkeeping = ("_name_or_path", "dtype", "transformers_version", "architectures", "auto_map")
    return {
        key: _architecture(value) if isinstance(value, dict) else value
        for key, value in config_dict.items()
        if key not in bookkeeping
    }


def _assert_same_tensors(found: dict, expected: dict) -> None:
    assert set(found) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(found[name], tensor), name


def _saved(model_class, config_class, folder: Path) -> Path:
    """Our default model (random weights) saved with save_pretrained."""
    torch.manual_seed(0)
    model_class(config_class()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    return _saved(EdgeTamModel, EdgeTamConfig, tmp_path_factory.mktemp("ours") / "image")


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory) -> Path:
    return _saved(EdgeTamVideoModel, EdgeTamVideoConfig, tmp_path_factory.mktemp("ours") / "video")


def _folder_with_config(folder: Path, tmp_path: Path, edit) -> Path:
    """A copy of `folder` (weights linked, not copied) whose config.json `edit` has changed."""
    edited = tmp_path / "edited"
    edited.mkdir()
    for path in folder.iterdir():
        if path.name != "config.json":
            (edited / path.name).symlink_to(path)
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (edited / "config.json").write_text(json.dumps(config))
    return edited


# ---------------------------------------------------------------------------- config.json


@pytest.mark.parametrize(
    "config",
    [
        EdgeTamConfig(),
        EdgeTamVideoConfig(
            num_maskmem=5, memory_attention_rope_theta=5000.0, mask_decoder_config={"dynamic_multimask_via_stability": False}
        ),
    ],
    ids=["image", "video"],
)
def test_config_round_trip_in_transformers_vocabulary(config, tmp_path):
    config.save_pretrained(tmp_path)
    on_disk = json.loads((tmp_path / "config.json").read_text())
    assert on_disk["model_type"] == config.model_type  # ours: the Auto classes find our classes by it
    assert on_disk["vision_config"]["model_type"] == "edgetam_vision_model"
    assert on_disk["vision_config"]["backbone_config"]["architecture"] == "repvit_m1"
    assert "backbone_embed_dims" not in on_disk["vision_config"]
    if isinstance(config, EdgeTamVideoConfig):
        assert on_disk["rope_parameters"] == {"rope_type": "axial", "rope_theta": 5000.0}
    loaded = type(config).from_pretrained(tmp_path)
    assert _architecture(loaded.to_dict()) == _architecture(config.to_dict())


def test_a_config_transformers_cannot_express_keeps_our_vocabulary(tmp_path):
    config = EdgeTamConfig(vision_config={"backbone_embed_dims": [16, 16, 32, 32], "backbone_depths": [1, 1, 1, 1]})
    config.save_pretrained(tmp_path)
    on_disk = json.loads((tmp_path / "config.json").read_text())
    assert on_disk["vision_config"]["backbone_embed_dims"] == [16, 16, 32, 32]
    assert _architecture(EdgeTamConfig.from_pretrained(tmp_path).to_dict()) == _architecture(config.to_dict())


@pytest.mark.parity
def test_transformers_reads_our_config(video_folder, image_folder):
    require_transformers_edgetam()
    import transformers

    video = transformers.EdgeTamVideoConfig.from_pretrained(video_folder)
    assert video.vision_config.backbone_config.architecture == "repvit_m1"
    assert video.enable_occlusion_spatial_embedding is False
    image = transformers.EdgeTamConfig.from_pretrained(image_folder)
    assert image.vision_config.fpn_hidden_size == 256


def test_the_image_config_reads_a_video_folder(video_folder):
    config = EdgeTamConfig.from_pretrained(video_folder)
    assert config.model_type == "edgetam_hf"
    assert not hasattr(config, "num_maskmem")


_FEATURES = {"features_only": True, "out_indices": [0, 1, 2, 3]}


def _repvit_m1(**changes) -> dict:
    return {**REPVIT_M1_BACKBONE, **changes}


def _transformers_config(model_type: str = "edgetam_video", **vision) -> dict:
    vision_config = {"model_type": "edgetam_vision_model", "backbone_config": dict(REPVIT_M1_BACKBONE), **vision}
    return {"model_type": model_type, "vision_config": vision_config}


@pytest.mark.parametrize(
    "config_dict, message",
    [
        ({"model_type": "sam2_video"}, r"describes a 'sam2_video' model, not EdgeTAM"),
        ({"model_type": "edgetam_video"}, r"no vision_config: transformers' EdgeTam default"),
        (
            {"model_type": "edgetam_video", "vision_config": {"model_type": "sam2_vision_model"}},
            r"'sam2_vision_model'.*RepViT-M1 encoder",
        ),
        (_transformers_config(backbone_config=None), r"no backbone_config: .* \(a ResNet-50\)"),
        (_transformers_config(backbone_config=_repvit_m1(architecture="resnet50")), r"backbone is timm 'resnet50'"),
        (
            _transformers_config(backbone_config=_repvit_m1(model_args={**_FEATURES, "embed_dim": [8]})),
            r"model_args \['embed_dim'\] change the trunk",
        ),
        (_transformers_config(backbone_config=_repvit_m1(model_args={"in_chans": 3})), r"features_only=True"),
    ],
    ids=["sam2-video", "no-vision-config", "hiera", "no-backbone", "resnet50", "other-trunk-size", "not-features-only"],
)
def test_configs_of_other_models_are_refused(config_dict, message, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(config_dict))
    with pytest.raises(ValueError, match=message):
        EdgeTamVideoConfig.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=message):
        EdgeTamModel.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------- transformers <-> ours


@pytest.mark.parity
@torch.no_grad()
def test_transformers_image_folder_loads_into_ours_with_equal_outputs(tmp_path):
    reference = randomised_transformers_edgetam()
    reference.save_pretrained(tmp_path)
    ours = EdgeTamModel.from_pretrained(tmp_path)
    assert _architecture(ours.config.to_dict()) == _architecture(EdgeTamConfig().to_dict())
    _assert_same_tensors(ours.state_dict(), reference.state_dict())

    # Up to the kernels (ours: the original's math attention and LayerNorm2d formula; see
    # tests/test_modeling.py, which compares the two ports on the same weights in detail).
    _assert_same_box_outputs(ours, reference)


def _assert_same_box_outputs(found, expected) -> None:
    """Both image models give the same outputs for one random image and box, up to float32 rounding."""
    pixels = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(5))
    boxes = torch.tensor([[[100.0, 200.0, 700.0, 650.0]]])
    found_outputs, expected_outputs = (model(pixel_values=pixels, input_boxes=boxes) for model in (found, expected))
    for name in ("pred_masks", "iou_scores", "object_score_logits"):
        assert_same_logits(getattr(found_outputs, name), getattr(expected_outputs, name), msg=name)


@pytest.mark.parity
@torch.no_grad()
def test_transformers_video_folder_loads_into_ours_with_equal_outputs(tmp_path):
    # EdgeTAM's checkpoint has neither (transformers' defaults enable both).
    reference = transformers_video_model(
        enable_occlusion_spatial_embedding=False, enable_temporal_pos_encoding_for_object_pointers=False
    )
    reference.save_pretrained(tmp_path)
    ours = EdgeTamVideoModel.from_pretrained(tmp_path)
    expected_config = _architecture(EdgeTamVideoConfig().to_dict())
    found_config = _architecture(ours.config.to_dict())
    assert {key: found_config[key] for key in expected_config} == expected_config
    _assert_same_tensors(ours.state_dict(), reference.state_dict())

    # The memory encoder of each model on the same frame features and mask.
    generator = torch.Generator().manual_seed(0)
    vision_features = torch.randn(1, 256, 16, 16, generator=generator)
    mask_logits = 4 * torch.randn(1, 1, 256, 256, generator=generator)
    expected_features, _ = reference.memory_encoder(vision_features, torch.sigmoid(mask_logits) * 20.0 - 10.0)
    actual = ours.memory_encoder(vision_features, mask_logits, binarize_mask=False)
    assert_same_float32(actual.memory_features, expected_features)

    # The image model takes the same folder, leaving the memory weights aside.
    image_model = EdgeTamModel.from_pretrained(tmp_path)
    _assert_same_tensors(image_model.state_dict(), {name: reference.state_dict()[name] for name in image_model.state_dict()})


@pytest.mark.parity
@pytest.mark.parametrize("kind", ["image", "video"])
def test_our_folders_load_into_transformers_with_no_missing_or_unexpected_keys(kind, image_folder, video_folder):
    require_transformers_edgetam()
    import transformers

    folder, ours_class, theirs_class = {
        "image": (image_folder, EdgeTamModel, transformers.EdgeTamModel),
        "video": (video_folder, EdgeTamVideoModel, transformers.EdgeTamVideoModel),
    }[kind]
    theirs, info = theirs_class.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    _assert_same_tensors(theirs.state_dict(), ours_class.from_pretrained(folder).state_dict())


# ---------------------------------------------------------------------------- Meta's original .pt


@pytest.fixture(scope="module")
def checkpoint_path(fixtures_dir) -> Path:
    return fixtures_dir / "edgetam_random_seed0.pt"


def test_original_checkpoint_loads_directly(checkpoint_path):
    expected = EdgeTamModel(EdgeTamConfig())
    load_original_state_dict(expected, read_original_checkpoint(checkpoint_path))
    model = EdgeTamModel.from_pretrained(checkpoint_path)
    assert not model.training
    _assert_same_tensors(model.state_dict(), expected.state_dict())

    video = EdgeTamVideoModel.from_pretrained(str(checkpoint_path))
    assert video.num_parameters() == 13_895_794


@torch.no_grad()
def test_a_model_computes_the_same_wherever_its_weights_came_from(image_folder):
    """safetensors leaves weights at unaligned offsets of the file, which some CPUs' kernels round
    differently; loading copies them into aligned memory of their own (loading.own_aligned_memory)."""
    from_folder = EdgeTamModel.from_pretrained(image_folder)
    tensors = [*from_folder.parameters(), *from_folder.buffers()]
    misaligned = [tensor.shape for tensor in tensors if tensor.data_ptr() % TENSOR_ALIGNMENT_BYTES]
    assert not misaligned, f"{len(misaligned)} of {len(tensors)} weights lie at unaligned addresses"
    in_memory = EdgeTamModel(EdgeTamConfig()).eval()
    in_memory.load_state_dict(load_file(str(image_folder / "model.safetensors")), strict=False)
    _assert_same_box_outputs(from_folder, in_memory)


def test_dtype_and_device_map_work_as_in_transformers(checkpoint_path, image_folder):
    for source in (checkpoint_path, image_folder):
        model = EdgeTamModel.from_pretrained(source, dtype=torch.bfloat16, device_map="cpu")
        assert {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}
        assert {parameter.device.type for parameter in model.parameters()} == {"cpu"}


def test_config_overrides_apply_to_the_original_checkpoint_as_to_a_folder(checkpoint_path, video_folder):
    for source in (checkpoint_path, video_folder):
        model = EdgeTamVideoModel.from_pretrained(source, fill_hole_area=0, num_maskmem=7)
        assert (model.config.fill_hole_area, model.config.num_maskmem) == (0, 7), source
    config = EdgeTamVideoConfig()
    EdgeTamVideoModel.from_pretrained(checkpoint_path, config=config, fill_hole_area=3)
    assert config.fill_hole_area == EdgeTamVideoConfig().fill_hole_area  # the caller's object is untouched


def test_original_checkpoint_with_a_config_that_does_not_fit_is_refused(checkpoint_path):
    config = EdgeTamConfig(mask_decoder_config={"num_hidden_layers": 3})
    with pytest.raises(ValueError, match=r"missing \d+: mask_decoder\.transformer\.layers\.2\."):
        EdgeTamModel.from_pretrained(checkpoint_path, config=config)


def test_truncated_original_checkpoint_is_refused(tmp_path):
    path = tmp_path / "edgetam.pt"
    torch.save({"model": {"no_mem_embed": torch.zeros(1, 1, 256)}}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        EdgeTamModel.from_pretrained(path)


# ---------------------------------------------------------------------------- strict folder loading


def _set(path: tuple, value):
    def edit(config):
        for key in path[:-1]:
            config = config[key]
        config[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (_set(("mask_decoder_config", "num_hidden_layers"), 3), r"missing \d+: mask_decoder\.transformer\.layers\.2\."),
        (_set(("mask_decoder_config", "num_hidden_layers"), 1), r"unexpected \d+: mask_decoder\.transformer\.layers\.1\."),
        (
            _set(("mask_decoder_config", "iou_head_hidden_dim"), 128),
            r"wrong shape \d+: mask_decoder\.iou_prediction_head\.layers\.0\.bias: checkpoint \(256,\) vs model \(128,\)",
        ),
    ],
    ids=["missing", "unexpected", "wrong-shape"],
)
def test_a_config_that_does_not_fit_the_weights_is_refused(image_folder, tmp_path, edit, message):
    with pytest.raises(ValueError, match=message):
        EdgeTamModel.from_pretrained(_folder_with_config(image_folder, tmp_path, edit))


def test_an_unexpected_weight_is_refused(image_folder, tmp_path):
    folder = tmp_path / "extra"
    shutil.copytree(image_folder, folder)
    weights = load_file(folder / "model.safetensors")
    weights["mask_decoder.extra_head.weight"] = torch.zeros(2)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"unexpected 1: mask_decoder\.extra_head\.weight"):
        EdgeTamModel.from_pretrained(folder)


def test_the_video_model_refuses_an_image_folder(image_folder):
    with pytest.raises(ValueError, match=r"holds the image model only.*`edgetam-hf convert edgetam\.pt FOLDER`"):
        EdgeTamVideoModel.from_pretrained(image_folder)


def test_a_truncated_weights_file_is_refused(image_folder, tmp_path):
    folder = tmp_path / "truncated"
    shutil.copytree(image_folder, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1_000_000])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        EdgeTamModel.from_pretrained(folder)


def test_output_loading_info_is_still_returned(image_folder):
    model, info = EdgeTamModel.from_pretrained(image_folder, output_loading_info=True)
    assert isinstance(model, EdgeTamModel)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
