"""Converting Meta's checkpoint into a save_pretrained folder (`edgetam-hf convert`), its
verification, its refusals (nothing written on failure) and the Hub upload (mocked: no network).

The fixture checkpoint (`$EDGETAM_FIXTURES/edgetam_random_seed0.pt`, Meta's key names, random
weights) is converted once, verified, and the folder must reproduce the stored image outputs of
Meta's code with the tolerance of tests/test_image_fixture_parity.py (both run `_reference.run_image_case`).
"""

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from safetensors import safe_open

from _reference import run_image_case
from edgetam_hf import EdgeTamModel, EdgeTamProcessor, EdgeTamVideoConfig
from edgetam_hf.conversion import convert as convert_module
from edgetam_hf.cli import main
from edgetam_hf.conversion import Check, HubPushError, VerificationError, VerificationReport, convert_checkpoint, push_to_hub
from edgetam_hf.modeling_video import EdgeTamVideoModel
from edgetam_hf.weights import ORIGINAL_TO_OURS, read_original_checkpoint
from edgetam_hf.numerics import LOGIT_ABSOLUTE, float32_tolerance

REPO_ROOT = Path(__file__).resolve().parents[1]
# Meta's SAM2Base: nn.Module.parameters(), i.e. without buffers (BatchNorm statistics and counters,
# the prompt encoder's random-Fourier matrix); keys.json of the fixture checkpoint.
ORIGINAL_NUM_PARAMETERS = 13_895_794
# The image path's share of them: trunk, neck, prompt encoder, mask decoder, no-memory embedding.
IMAGE_NUM_PARAMETERS = 9_120_641
_ORIGINAL_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked", "positional_encoding_gaussian_matrix")


@pytest.fixture(scope="module")
def checkpoint_path(fixtures_dir) -> Path:
    return fixtures_dir / "edgetam_random_seed0.pt"


@pytest.fixture(scope="module")
def original_state_dict(checkpoint_path) -> dict[str, torch.Tensor]:
    return read_original_checkpoint(checkpoint_path)


@pytest.fixture(scope="module")
def converted(checkpoint_path, tmp_path_factory):
    """The fixture checkpoint converted with --model both --verify (the real verification, once)."""
    return convert_checkpoint(checkpoint_path, tmp_path_factory.mktemp("converted") / "edgetam", model="both", verify=True)


def _entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


# ---------------------------------------------------------------------------- the converted folder


def test_folder_has_weights_config_processor_and_model_card(converted):
    folder = converted.output_dir
    assert {"config.json", "model.safetensors", "processor_config.json", "README.md", "edgetam_hf_classes.py"} <= set(
        _entries(folder)
    )
    assert len({(folder / name).stat().st_mode for name in _entries(folder)}) == 1  # weights 644 like the rest
    assert json.loads((folder / "processor_config.json").read_text())["processor_class"] == "EdgeTamVideoProcessor"
    assert _entries(folder.parent) == [folder.name]  # no temporary folder left next to it

    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "edgetam_hf_video"
    assert config["vision_config"]["backbone_config"]["architecture"] == "repvit_m1"

    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "mask-generation"
    assert card.data.license == "apache-2.0"
    assert "arxiv:2501.07256" in card.data.tags
    assert "https://arxiv.org/abs/2501.07256" in card.text
    assert converted.checkpoint_sha256 in card.text
    assert 'pipeline("mask-generation", model=' in card.text and "trust_remote_code=True" in card.text


def test_keys_shapes_and_parameter_count(converted, original_state_dict):
    with torch.device("meta"):
        expected = EdgeTamVideoModel(EdgeTamVideoConfig()).state_dict()
    with safe_open(converted.output_dir / "model.safetensors", framework="pt") as saved:
        saved_shapes = {key: tuple(saved.get_slice(key).get_shape()) for key in saved.keys()}
    assert saved_shapes == {key: tuple(tensor.shape) for key, tensor in expected.items()}

    original_parameters = sum(
        tensor.numel() for key, tensor in original_state_dict.items() if not key.endswith(_ORIGINAL_BUFFER_SUFFIXES)
    )
    assert original_parameters == ORIGINAL_NUM_PARAMETERS
    assert converted.num_original_keys == len(original_state_dict) == 982
    assert converted.num_parameters == ORIGINAL_NUM_PARAMETERS
    assert EdgeTamModel.from_pretrained(converted.output_dir).num_parameters() == IMAGE_NUM_PARAMETERS


def test_verification_compares_the_folder_with_the_mapped_weights(converted):
    report = converted.verification
    assert report.passed
    names = [check.name for check in report.checks]
    assert any(name.startswith("EdgeTamModel from the folder") for name in names)
    assert any(name.startswith("EdgeTamVideoModel from the folder") for name in names)
    outputs, weights = report.checks[:2]
    # The outputs through two weight buffers: float32 rounding at most; the weights: copied exactly.
    assert 0 < outputs.tolerance < 1e-3 and outputs.max_abs_difference <= outputs.tolerance, outputs.line()
    assert weights.tolerance == 0.0 and weights.max_abs_difference == 0.0, weights.line()
    original = report.checks[-1]
    assert "sam2" in original.name
    assert original.max_abs_difference is None or original.passed  # compared only where sam2 is importable
    assert len(report.iou_scores) == 3


@pytest.mark.parametrize("case_index", range(6))
def test_folder_reproduces_the_fixture_image_outputs(case_index, converted, oracle, folder_image_inputs):
    manifest, tensors = oracle
    case = manifest["image"]["cases"][case_index]
    model, processor, image, original_sizes, embeddings = folder_image_inputs
    outputs = run_image_case(case, tensors, model, processor, image, original_sizes, embeddings)

    reference = tensors[f"{case['name']}/low_res_raw"]
    assert (outputs.pred_masks.reshape(reference.shape) - reference).abs().max().item() <= float32_tolerance(reference)
    for name, found in (("iou", outputs.iou_scores), ("object_score_logits", outputs.object_score_logits)):
        expected = tensors[f"{case['name']}/{name}"]
        assert (found.reshape(expected.shape) - expected).abs().max().item() <= LOGIT_ABSOLUTE


@torch.no_grad()
def test_folder_reproduces_the_fixture_video_outputs(converted, oracle, fixtures_dir):
    """vid_single: one click on frame 0, then one tracked frame (memory encoder, perceiver and memory
    attention all take part). The fixture ran without hole filling, so it is turned off here."""
    from edgetam_hf.video_processing import EdgeTamVideoProcessor

    manifest, tensors = oracle
    add_step, propagate_step = manifest["video"]["vid_single"]["steps"][:2]
    model = EdgeTamVideoModel.from_pretrained(converted.output_dir, fill_hole_area=0)
    processor = EdgeTamVideoProcessor.from_pretrained(converted.output_dir)
    session = processor.init_video_session(fixtures_dir / "original_seed0" / "frames")
    prompt = add_step["prompt"]
    processor.add_inputs_to_inference_session(
        session, add_step["frame"], add_step["obj"], input_points=[[prompt["points"]]], input_labels=[[prompt["labels"]]]
    )
    outputs = {add_step["frame"]: model(session, frame_idx=add_step["frame"])}
    tracked = model.propagate_in_video_iterator(session, max_frame_num_to_track=1)
    outputs.update((output.frame_idx, output) for output in tracked)

    expected = {add_step["frame"]: add_step, **{frame["frame"]: frame for frame in propagate_step["frames"][:2]}}
    assert sorted(outputs) == sorted(expected) == [0, 1]
    for frame_idx, output in outputs.items():
        reference = _stored(tensors, expected[frame_idx]["low_res"])
        assert (output.pred_masks.reshape(reference.shape) - reference).abs().max().item() <= float32_tolerance(reference)
        scores = _stored(tensors, expected[frame_idx]["object_score_logits"])
        assert (output.object_score_logits.reshape(scores.shape) - scores).abs().max().item() <= LOGIT_ABSOLUTE


def _stored(tensors: dict, entry: dict) -> torch.Tensor:
    """A manifest entry's tensor; a repeated one points to its first copy (`same_as`)."""
    return tensors[entry.get("key") or entry["same_as"]]


@pytest.fixture(scope="module")
def folder_image_inputs(converted, oracle):
    """The image model and processor loaded from the converted folder, and the fixture image's embeddings."""
    _, tensors = oracle
    model = EdgeTamModel.from_pretrained(converted.output_dir)
    processor = EdgeTamProcessor.from_pretrained(converted.output_dir)
    image = tensors["input/image_uint8"].numpy()
    inputs = processor(images=image, return_tensors="pt")
    with torch.no_grad():
        embeddings = model.get_image_embeddings(inputs["pixel_values"])
    return model, processor, image, inputs["original_sizes"], embeddings


# ---------------------------------------------------------------------------- refusals: nothing written


def _edited_checkpoint(original: dict, tmp_path: Path, edit) -> Path:
    state_dict = dict(original)
    edit(state_dict)
    path = tmp_path / "edited.pt"
    torch.save({"model": state_dict}, path)
    return path


def _rename(old: str, new: str):
    return lambda state_dict: state_dict.__setitem__(new, state_dict.pop(old))


def _reshape(key: str, shape: tuple):
    return lambda state_dict: state_dict.__setitem__(key, torch.zeros(shape))


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            _rename("sam_mask_decoder.iou_token.weight", "sam_mask_decoder.iou_tokens.weight"),
            r"not EdgeTAM weights.*sam_mask_decoder\.iou_tokens\.weight",
        ),
        (
            lambda state_dict: state_dict.pop("memory_attention.norm.weight"),
            r"missing 1: memory_attention\.layer_norm\.weight",
        ),
        (
            _reshape("no_mem_embed", (1, 1, 128)),
            r"wrong shape 1: no_memory_embedding: checkpoint \(1, 1, 128\) vs model \(1, 1, 256\)",
        ),
    ],
    ids=["renamed", "missing", "wrong-shape"],
)
def test_a_checkpoint_that_does_not_fit_is_refused_and_nothing_written(original_state_dict, tmp_path, edit, message):
    checkpoint = _edited_checkpoint(original_state_dict, tmp_path, edit)
    output_dir = tmp_path / "out" / "edgetam"
    with pytest.raises(ValueError, match=message):
        convert_checkpoint(checkpoint, output_dir)
    assert _entries(tmp_path) == ["edited.pt"]  # not even the parent folder


def _fake_checkpoint(tmp_path: Path, state_dict: dict, name: str = "fake.pt") -> Path:
    path = tmp_path / name
    torch.save({"model": state_dict}, path)
    return path


def test_truncated_checkpoint_is_refused(tmp_path):
    whole = _fake_checkpoint(tmp_path, {"no_mem_embed": torch.zeros(1, 1, 256)}, "whole.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"truncated\.pt is not a readable PyTorch checkpoint"):
        convert_checkpoint(truncated, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_sam2_hiera_checkpoint_is_refused_naming_its_keys(tmp_path):
    hiera = {
        "image_encoder.trunk.patch_embed.proj.weight": torch.zeros(96, 3, 7, 7),
        "image_encoder.trunk.blocks.0.attn.qkv.weight": torch.zeros(288, 96),
        "image_encoder.trunk.blocks.0.mlp.layers.0.weight": torch.zeros(384, 96),
        "image_encoder.neck.convs.0.conv.weight": torch.zeros(256, 768, 1, 1),
        "sam_mask_decoder.iou_token.weight": torch.zeros(1, 256),
    }
    with pytest.raises(ValueError, match=r"3 key\(s\).*image_encoder\.trunk\.blocks\.0\.attn\.qkv\.weight"):
        convert_checkpoint(_fake_checkpoint(tmp_path, hiera), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_file_without_the_model_entry_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {"no_mem_embed": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match=r"expected \{'model': state_dict\}, found \['state_dict'\]"):
        convert_checkpoint(path, tmp_path / "out")


def test_failed_verification_writes_nothing(checkpoint_path, tmp_path, monkeypatch):
    failing = VerificationReport("a prompt", [0.5, 0.5, 0.5], 1.0, [Check("folder vs mapped weights", 0.25, 1e-4)])
    monkeypatch.setattr(convert_module, "verify_folder", lambda *args: failing)
    with pytest.raises(VerificationError, match="folder vs mapped weights: FAILED"):
        convert_checkpoint(checkpoint_path, tmp_path / "out", model="image", verify=True)
    assert _entries(tmp_path) == []

    assert main(["convert", str(checkpoint_path), str(tmp_path / "out"), "--model", "image", "--verify"]) == 1
    assert _entries(tmp_path) == []


def test_existing_folder_is_replaced_only_with_overwrite(checkpoint_path, tmp_path, capsys):
    output_dir = tmp_path / "edgetam"
    output_dir.mkdir()
    (output_dir / "old.txt").write_text("keep me")
    with pytest.raises(ValueError, match="exists and is not empty"):
        convert_checkpoint(checkpoint_path, output_dir, model="image")
    assert _entries(output_dir) == ["old.txt"]

    assert main(["convert", str(checkpoint_path), str(output_dir), "--model", "image", "--overwrite"]) == 0
    assert "old.txt" not in _entries(output_dir)
    assert _entries(tmp_path) == ["edgetam"]
    assert "wrote" in capsys.readouterr().out
    config = json.loads((output_dir / "config.json").read_text())
    assert config["model_type"] == "edgetam_hf"  # the image model's folder


# ---------------------------------------------------------------------------- command line


def test_cli_refusal_is_one_line_naming_the_key(tmp_path, capsys):
    checkpoint = _fake_checkpoint(tmp_path, {"image_encoder.trunk.blocks.0.attn.qkv.weight": torch.zeros(3, 3)})
    assert main(["convert", str(checkpoint), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "image_encoder.trunk.blocks.0.attn.qkv.weight" in error
    assert not (tmp_path / "out").exists()


def test_cli_private_and_revision_need_push_to_hub(tmp_path, capsys):
    assert main(["convert", "edgetam.pt", str(tmp_path / "out"), "--private"]) == 2
    assert "--private and --revision apply to --push-to-hub" in capsys.readouterr().err


def test_conversion_script_is_the_cli(checkpoint_path, tmp_path, monkeypatch):
    import runpy

    argv = ["convert_edgetam_to_hf.py", str(checkpoint_path), str(tmp_path / "out"), "--model", "image"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO_ROOT / "conversion" / "convert_edgetam_to_hf.py"), run_name="__main__")
    assert exit_info.value.code == 0
    assert (tmp_path / "out" / "model.safetensors").is_file()


# ---------------------------------------------------------------------------- Hub (no network)


def test_push_without_network_is_a_one_line_error(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # requests are refused before leaving
    expected = r"^could not push to the Hub repo me/edgetam \(OfflineModeIsEnabled: .*offline"
    with pytest.raises(HubPushError, match=expected) as error:
        push_to_hub(tmp_path, "me/edgetam")
    assert "\n" not in str(error.value)

    def unreachable(*args, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known\nmore detail")

    monkeypatch.setattr(HfApi, "create_repo", unreachable)
    with pytest.raises(HubPushError, match=r"\(ConnectionError: \[Errno -2\] Name or service not known\)$"):
        push_to_hub(tmp_path, "me/edgetam")


class _RecordingHub:
    """Stands in for the Hub: records what HfApi was asked to do and what the folder held then."""

    def __init__(self, monkeypatch):
        self.calls = {}
        for name in ("create_repo", "create_branch", "upload_folder"):
            monkeypatch.setattr(HfApi, name, self._recorder(name))

    def _recorder(self, name):
        def record(api, *args, **kwargs):
            self.calls[name] = (args, kwargs)
            if name == "upload_folder":
                self.uploaded = _folder_digest(Path(kwargs["folder_path"]))
            return None

        return record


def _folder_digest(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


@pytest.fixture
def recorded_verification(monkeypatch):
    """verify_folder replaced by a passing report that records the folder it verified (the real
    verification runs once, in the `converted` fixture)."""
    verified = {}

    def verify(folder, original, checkpoint_path=None):
        verified.update(_folder_digest(Path(folder)))
        return VerificationReport("a prompt", [0.5, 0.5, 0.5], 1.0, [Check("folder vs mapped weights", 0.0, 1e-4)])

    monkeypatch.setattr(convert_module, "verify_folder", verify)
    return verified


def test_push_uploads_the_verified_folder(checkpoint_path, tmp_path, monkeypatch, recorded_verification, capsys):
    hub = _RecordingHub(monkeypatch)
    output_dir = tmp_path / "edgetam"
    argv = ["convert", str(checkpoint_path), str(output_dir), "--model", "image", "--push-to-hub", "me/edgetam"]
    assert main([*argv, "--private", "--revision", "v1"]) == 0

    assert hub.calls["create_repo"] == (("me/edgetam",), {"private": True, "exist_ok": True})
    assert hub.calls["create_branch"][1]["branch"] == "v1"
    upload = hub.calls["upload_folder"][1]
    assert Path(upload["folder_path"]) == output_dir and upload["repo_id"] == "me/edgetam" and upload["revision"] == "v1"
    # What was pushed is what was verified (README.md, written after the verification, aside).
    assert {name: digest for name, digest in hub.uploaded.items() if name != "README.md"} == recorded_verification
    assert 'from_pretrained("me/edgetam")' in (output_dir / "README.md").read_text()
    assert "pushed" in capsys.readouterr().out


def test_push_offline_keeps_the_folder_and_says_so_in_one_line(
    checkpoint_path, tmp_path, monkeypatch, recorded_verification, capsys
):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    output_dir = tmp_path / "edgetam"
    assert main(["convert", str(checkpoint_path), str(output_dir), "--model", "image", "--push-to-hub", "me/edgetam"]) == 3
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "offline" in error and str(output_dir) in error
    assert recorded_verification  # pushing implies verifying
    assert (output_dir / "model.safetensors").is_file()


# ---------------------------------------------------------------------------- docs/weights.md


def _weights_doc_generator():
    sys.path.insert(0, str(REPO_ROOT / "conversion"))
    try:
        import make_weights_doc
    finally:
        sys.path.pop(0)
    return make_weights_doc


def test_weights_doc_lists_every_rule():
    doc = (REPO_ROOT / "docs" / "weights.md").read_text()
    generator = _weights_doc_generator()
    for number, rule in enumerate(ORIGINAL_TO_OURS, start=1):
        assert f"| {number} | `{generator.readable_pattern(rule.pattern)}` |" in doc, rule.pattern


def test_weights_doc_is_up_to_date(original_state_dict):
    doc = (REPO_ROOT / "docs" / "weights.md").read_text()
    assert _weights_doc_generator().weights_markdown(original_state_dict) == doc, (
        "regenerate: python conversion/make_weights_doc.py edgetam_random_seed0.pt > docs/weights.md"
    )
