"""Training: the SAM 2 loss terms, labels from the processor, the collator and datasets, a tiny
model that learns, gradients everywhere the loss reaches, seeded determinism, Trainer and CLI."""

import numpy as np
import pytest
import torch
from PIL import Image

from _image_tiny import tiny_config
from _tolerance import assert_same_logits
from edgetam_hf import EdgeTamModel
from edgetam_hf.cli import main
from edgetam_hf.image_processing import EdgeTamImageProcessor
from edgetam_hf.losses import binary_mask_iou, dice_loss, segmentation_loss, sigmoid_focal_loss
from edgetam_hf.processing import EdgeTamProcessor
from edgetam_hf.training.collator import EdgeTamDataCollator
from edgetam_hf.training.datasets import DavisFolderDataset, ImageMaskFolderDataset
from edgetam_hf.training.corrections import corrected_prediction, sample_correction_clicks
from edgetam_hf.training.evaluation import interior_click
from edgetam_hf.training.initialization import freeze_batch_norm_statistics, initialise_for_training_from_scratch
from edgetam_hf.training.prompts import sample_box, sample_click
from edgetam_hf.training.shapes import render_shapes_clip, render_shapes_scene

SCENE_SIZE = (96, 80)  # (width, height) of the rendered training scenes
TINY_IMAGE_SIZE = 128  # image embedding 8x8, masks 32x32: a training step in a fraction of a second


def tiny_processor() -> EdgeTamProcessor:
    side = TINY_IMAGE_SIZE
    image_processor = EdgeTamImageProcessor(size={"height": side, "width": side}, mask_size={"height": side // 4, "width": side // 4})
    return EdgeTamProcessor(image_processor, target_size=side)


def shape_items(seed: int, count: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [dict(zip(("image", "masks"), render_shapes_scene(rng, SCENE_SIZE), strict=True)) for _ in range(count)]


def fresh_model(seed: int = 0) -> EdgeTamModel:
    torch.manual_seed(seed)
    return EdgeTamModel(tiny_config(TINY_IMAGE_SIZE)).train()


def train(model: EdgeTamModel, batches: list[dict], learning_rate: float = 3e-3) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    losses = []
    for batch in batches:
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# ---- the loss terms -------------------------------------------------------------------------


def test_loss_terms_vanish_on_a_confident_right_answer_and_not_on_a_wrong_one():
    target = torch.zeros(1, 8, 8)
    target[0, 2:6, 2:6] = 1
    right, wrong = (target * 2 - 1) * 30, (1 - target * 2) * 30
    assert float(dice_loss(right, target)) < 1e-6 and float(sigmoid_focal_loss(right, target)) < 1e-6
    assert float(dice_loss(wrong, target)) > 0.9 and float(sigmoid_focal_loss(wrong, target)) > 1.0
    assert float(binary_mask_iou(right, target)) == 1.0 and float(binary_mask_iou(wrong, target)) == 0.0


def test_only_the_best_of_the_multimask_outputs_gets_the_mask_losses():
    target = torch.zeros(1, 8, 8)
    target[0, :4] = 1
    good, bad = (target * 2 - 1) * 5, (1 - target * 2) * 5
    masks = torch.stack([bad[0], good[0], bad[0]])[None]  # (1 object, 3 masks, 8, 8)
    scores, presence = torch.tensor([[0.25, 0.875, 0.5]]), torch.full((1, 1), 4.0)
    best_only = segmentation_loss(masks, scores, presence, target)
    good_alone = segmentation_loss(good[None], scores[:, 1:2], presence, target)
    assert torch.allclose(best_only.focal, good_alone.focal) and torch.allclose(best_only.dice, good_alone.dice)
    # the IoU head learns every output's IoU: 1 for the good mask, 0 for the two bad ones (an L1
    # loss; distinct scores, so that IoU targets given to the wrong outputs would show)
    assert float(best_only.iou) == pytest.approx((0.25 + 0.125 + 0.5) / 3)


def test_an_absent_object_only_trains_the_object_score():
    masks = torch.randn(2, 3, 8, 8, requires_grad=True)
    scores = torch.rand(2, 3, requires_grad=True)
    presence = torch.zeros(2, 1, requires_grad=True)
    target = torch.zeros(2, 8, 8)
    target[0, 1:3, 1:3] = 1  # object 0 present, object 1 absent
    loss = segmentation_loss(masks, scores, presence, target)
    loss.total.backward()
    assert masks.grad[1].abs().sum() == 0 and scores.grad[1].abs().sum() == 0
    assert masks.grad[0].abs().sum() > 0 and presence.grad[1].abs().sum() > 0
    assert loss.object_score.item() == pytest.approx(float(torch.nn.functional.softplus(torch.zeros(()))))


# ---- data: prompts, labels, collator, datasets -------------------------------------------------


def test_sampled_prompts_lie_on_the_object():
    rng = np.random.default_rng(0)
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:50] = True
    for _ in range(20):
        x, y = sample_click(mask, rng)
        assert mask[int(y), int(x)]
        x0, y0, x1, y1 = sample_box(mask, rng)
        assert abs(x0 - 20) <= 3 and abs(y0 - 10) <= 2 and abs(x1 - 49) <= 3 and abs(y1 - 29) <= 2
    assert interior_click(mask) in [(34.0, 19.0), (35.0, 19.0), (34.0, 20.0), (35.0, 20.0)]


def test_processor_builds_labels_at_the_input_size():
    masks = np.zeros((2, 50, 100), bool)
    masks[0, :, :50] = True
    masks[1, 25:] = True
    encoded = tiny_processor()(images=Image.new("RGB", (100, 50)), input_points=[[[[10, 10]], [[80, 40]]]], labels=[masks])
    labels = encoded["labels"]
    assert labels.shape == (1, 2, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE) and labels.dtype == torch.float32
    half = TINY_IMAGE_SIZE // 2
    assert labels[0, 0, :, :half].all() and not labels[0, 0, :, half:].any()
    assert labels[0, 1, half:].all() and not labels[0, 1, :half].any()
    with pytest.raises(ValueError, match=r"labels\[0\] must have shape \(num_objects, 50, 100\)"):
        tiny_processor()(images=Image.new("RGB", (100, 50)), input_points=[[[[10, 10]]]], labels=[masks[:, :20]])


def test_collator_makes_rectangular_batches_of_model_inputs():
    batch = EdgeTamDataCollator(tiny_processor(), objects_per_image=3)(shape_items(0, 2))
    assert set(batch) == {"pixel_values", "input_points", "input_labels", "labels", "multimask_output"}
    assert batch["labels"].shape == (2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)
    assert batch["input_points"].shape[:2] == (2, 3)
    with pytest.raises(ValueError, match="item 0 must be a dict with 'image' and 'masks'"):
        EdgeTamDataCollator(tiny_processor())([{"image": Image.new("RGB", (8, 8))}])


def test_a_batch_is_all_clicks_with_three_outputs_or_all_boxes_with_one():
    collator = EdgeTamDataCollator(tiny_processor(), objects_per_image=2, box_probability=0.5, seed=1)
    batches = [collator(shape_items(seed, 2)) for seed in range(8)]
    kinds = {batch["multimask_output"] for batch in batches}
    assert kinds == {True, False}
    for batch in batches:
        expected = [[[1]] * 2] * 2 if batch["multimask_output"] else [[[2, 3]] * 2] * 2
        assert batch["input_labels"].tolist() == expected


def test_scenes_hold_at_least_the_objects_asked_for():
    rng = np.random.default_rng(0)
    counts = [len(render_shapes_scene(rng, SCENE_SIZE, max_shapes=5, min_objects=3)[1]) for _ in range(10)]
    assert min(counts) >= 3
    with pytest.raises(ValueError, match="min_objects must be in"):
        render_shapes_scene(rng, SCENE_SIZE, max_shapes=2, min_objects=3)


def test_clips_move_their_shapes_and_their_objects_are_those_seen_on_frame_zero():
    rng = np.random.default_rng(0)
    for _ in range(5):
        frames, masks = render_shapes_clip(rng, SCENE_SIZE, num_frames=4, max_shapes=4, min_objects=2)
        assert len(frames) == 4 and frames[0].size == SCENE_SIZE
        assert masks.shape[0] == 4 and masks.shape[1] >= 2 and masks.shape[2:] == SCENE_SIZE[::-1]
        assert masks.sum(1).max() <= 1  # visible parts are disjoint
        assert masks[0].any(axis=(1, 2)).all()  # every object is seen on frame 0
        assert not np.array_equal(masks[0], masks[-1])  # the shapes moved
        pixels = [np.asarray(frame) for frame in frames]
        for frame_pixels, frame_masks in zip(pixels, masks, strict=True):
            for mask in frame_masks[frame_masks.any(axis=(1, 2))]:
                assert len(np.unique(frame_pixels[mask], axis=0)) == 1  # one flat colour per visible shape
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        render_shapes_clip(rng, SCENE_SIZE, num_frames=0)


def test_initialisation_for_training_from_scratch_is_pytorchs_and_seeded():
    def initialised(seed: int) -> EdgeTamModel:
        model = fresh_model()
        torch.manual_seed(seed)
        return initialise_for_training_from_scratch(model)

    first, second, other = initialised(1), initialised(1), initialised(2)
    point_embed = first.prompt_encoder.point_embed.weight.detach()
    assert 0.7 < float(point_embed.std()) < 1.3  # N(0, 1) as nn.Embedding, not N(0, 0.02)
    assert all(torch.equal(value, second.state_dict()[name]) for name, value in first.state_dict().items())
    assert not torch.equal(point_embed, other.prompt_encoder.point_embed.weight)
    # the frequencies shared by prompts and the image grid stay one matrix
    assert torch.equal(first.shared_image_embedding.positional_embedding, first.prompt_encoder.shared_embedding.positional_embedding)
    with pytest.raises(TypeError, match="model must be an EdgeTamModel"):
        initialise_for_training_from_scratch(torch.nn.Linear(2, 2))


def test_frozen_batch_norm_statistics_make_training_forward_the_inference_forward():
    """The tiny bundled model trains so: a training-mode forward gives the inference masks, a
    step leaves the running statistics alone and still moves the BatchNorms' scale."""
    model = freeze_batch_norm_statistics(initialise_for_training_from_scratch(fresh_model()))
    batch = EdgeTamDataCollator(tiny_processor(), box_probability=0.0, seed=3)(shape_items(6, 2))
    training_masks = model(**batch).pred_masks.detach()
    with torch.no_grad():
        assert_same_logits(model.eval()(**batch).pred_masks, training_masks)
    freeze_batch_norm_statistics(model.train())
    statistics = {name: value.clone() for name, value in model.state_dict().items() if "running" in name}
    train(model, [batch])
    assert statistics and all(torch.equal(value, model.state_dict()[name]) for name, value in statistics.items())
    first_norm = next(module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d))
    assert not torch.equal(first_norm.weight.detach(), torch.ones_like(first_norm.weight))


def test_correction_clicks_fall_on_errors_with_the_right_label():
    truth = torch.zeros(3, 10, 10, dtype=torch.bool)
    truth[:, 2:6, 2:6] = True
    predicted = truth.clone()
    predicted[0, 2:6, 2:4] = False  # row 0 misses part of the object: a positive click there
    predicted[1, 7:9, 7:9] = True  # row 1 claims background: a negative click there
    points, labels = sample_correction_clicks(predicted, truth, np.random.default_rng(0))  # row 2 is right
    (x0, y0), (x1, y1), (x2, y2) = points[:, 0].int().tolist()
    assert labels[:, 0].tolist() == [1, 0, 0]
    assert 2 <= x0 < 4 and 2 <= y0 < 6 and 7 <= x1 < 9 and 7 <= y1 < 9 and not truth[2, y2, x2]


def test_a_correction_click_trains_the_single_output_and_the_mask_prompt():
    model = initialise_for_training_from_scratch(fresh_model())
    batch = EdgeTamDataCollator(tiny_processor(), box_probability=0.0, seed=2)(shape_items(5, 2))
    first = model(**batch)
    corrected = corrected_prediction(model, batch, first, np.random.default_rng(0))
    assert corrected.pred_masks.shape[2] == 1 and corrected.loss.ndim == 0
    corrected.loss.backward()
    for name in ("prompt_encoder.mask_embed.conv1.weight", "mask_decoder.output_hypernetworks_mlps.0.proj_out.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    assert model.vision_encoder.neck.convs[0].weight.grad.abs().sum() > 0  # through the shared image features


def _write_ids(path, ids: np.ndarray) -> None:
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    image.save(path)


def test_datasets_read_both_layouts_and_skip_images_without_objects(tmp_path):
    ids = np.zeros((20, 30), np.uint8)
    ids[2:8, 3:9], ids[10:18, 12:28] = 1, 2
    (tmp_path / "flat" / "images").mkdir(parents=True)
    (tmp_path / "flat" / "masks").mkdir()
    for name, object_ids in (("a", ids), ("empty", np.zeros_like(ids))):
        Image.new("RGB", (30, 20), "gray").save(tmp_path / "flat" / "images" / f"{name}.jpg")
        _write_ids(tmp_path / "flat" / "masks" / f"{name}.png", object_ids)
    davis = tmp_path / "davis"
    for frame in range(2):
        (davis / "JPEGImages" / "480p" / "clip").mkdir(parents=True, exist_ok=True)
        (davis / "Annotations" / "480p" / "clip").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (30, 20)).save(davis / "JPEGImages" / "480p" / "clip" / f"{frame:05d}.jpg")
        _write_ids(davis / "Annotations" / "480p" / "clip" / f"{frame:05d}.png", ids)
    for dataset, length in ((ImageMaskFolderDataset(tmp_path / "flat"), 1), (DavisFolderDataset(davis), 2)):
        assert len(dataset) == length
        item = dataset[0]
        assert item["image"].size == (30, 20) and item["masks"].shape == (2, 20, 30)
        assert item["masks"][0].sum() == 36 and item["masks"][1].sum() == 128
    with pytest.raises(ValueError, match="layout: images/NAME.jpg with masks/NAME.png"):
        ImageMaskFolderDataset(davis)


# ---- learning -----------------------------------------------------------------------------------


def test_labels_give_the_loss_and_its_terms():
    model = fresh_model()
    outputs = model(**EdgeTamDataCollator(tiny_processor())(shape_items(1, 2)))
    terms = (outputs.focal_loss, outputs.dice_loss, outputs.iou_loss, outputs.object_score_loss)
    assert torch.allclose(outputs.loss, 20 * terms[0] + terms[1] + terms[2] + terms[3])
    assert outputs["loss"] is outputs.loss  # what transformers' Trainer reads
    with pytest.raises(ValueError, match=r"labels must have shape \(batch, num_objects, height, width\)"):
        model(pixel_values=torch.zeros(1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE), input_points=torch.zeros(1, 1, 1, 2), labels=torch.zeros(1, 2, 4, 4))


def test_a_tiny_model_learns_a_batch():
    batch = EdgeTamDataCollator(tiny_processor())(shape_items(2, 2))
    losses = train(fresh_model(), [batch] * 10, learning_rate=1e-2)
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("box_probability", [0.0, 1.0])
def test_gradients_reach_every_parameter_the_loss_uses(box_probability):
    """Clicks (three outputs) or boxes as corner points (one output), and the padding point the
    prompt encoder appends. Not used: the mask-prompt encoder (no mask prompt), the negative-click
    embedding, the box-corner embeddings with clicks, and the hypernetworks of the mask tokens
    whose masks the loss does not train (token 0 with three outputs, only the best of the three)."""
    model = initialise_for_training_from_scratch(fresh_model())
    batch = EdgeTamDataCollator(tiny_processor(), objects_per_image=2, box_probability=box_probability, seed=3)(shape_items(3, 2))
    outputs = model(**batch)
    outputs.loss.backward()
    multimask_output = batch["multimask_output"]
    assert multimask_output == (box_probability == 0.0) and outputs.pred_masks.shape[2] == (3 if multimask_output else 1)
    trained_tokens = {0} if not multimask_output else set((_best_outputs(outputs.pred_masks, batch["labels"]) + 1).tolist())
    unused = ["prompt_encoder.mask_embed."]
    unused += [f"mask_decoder.output_hypernetworks_mlps.{token}." for token in range(4) if token not in trained_tokens]
    reached = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    expected = {name for name, p in model.named_parameters() if p.requires_grad and not name.startswith(tuple(unused))}
    assert sorted(expected - reached) == [] and sorted(reached - expected) == []
    used_rows = [1] if multimask_output else [2, 3]  # point_embed rows: negative, positive, box corners
    row_reached = model.prompt_encoder.point_embed.weight.grad.abs().sum(-1) > 0
    assert row_reached.nonzero().flatten().tolist() == used_rows


def _best_outputs(pred_masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The multimask output per object with the lowest 20 x focal + Dice, as the loss picks it."""
    logits = torch.nn.functional.interpolate(pred_masks.flatten(0, 1).detach(), size=labels.shape[-2:], mode="bilinear")
    targets = labels.flatten(0, 1)[:, None].expand_as(logits)
    return (20 * sigmoid_focal_loss(logits, targets) + dice_loss(logits, targets)).argmin(-1)


def test_training_is_deterministic_with_a_seed():
    def run() -> tuple[list[float], dict]:
        collator = EdgeTamDataCollator(tiny_processor(), seed=7)
        model = fresh_model(seed=5)
        losses = train(model, [collator(shape_items(seed, 2)) for seed in range(3)])
        return losses, model.state_dict()

    (first_losses, first_state), (second_losses, second_state) = run(), run()
    assert first_losses == second_losses  # the same computation, repeated: equal to the last bit
    assert all(torch.equal(first_state[name], second_state[name]) for name in first_state)


# ---- Trainer and the command line ---------------------------------------------------------------


def test_finetune_command_trains_checkpoints_and_resumes(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for index, item in enumerate(shape_items(4, 3)):
        item["image"].save(data / "images" / f"{index}.png")
        ids = np.zeros(item["masks"].shape[1:], np.uint8)
        for object_id, mask in enumerate(item["masks"], start=1):
            ids[mask] = object_id
        _write_ids(data / "masks" / f"{index}.png", ids)
    fresh_model().save_pretrained(tmp_path / "start")
    arguments = [str(data), "--model", str(tmp_path / "start"), "--out", str(tmp_path / "run"), "--device", "cpu"]
    assert main(["finetune", *arguments, "--steps", "2", "--save-steps", "1", "--batch-size", "2"]) == 0
    assert (tmp_path / "run" / "checkpoint-2").is_dir() and (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert main(["finetune", *arguments, "--steps", "3", "--save-steps", "1", "--batch-size", "2", "--resume"]) == 0
    assert (tmp_path / "run" / "checkpoint-3").is_dir()
    trained = EdgeTamModel.from_pretrained(str(tmp_path / "run" / "final"))
    start = EdgeTamModel.from_pretrained(str(tmp_path / "start"))
    assert not torch.equal(trained.mask_decoder.iou_token.weight, start.mask_decoder.iou_token.weight)
    capsys.readouterr()
    assert main(["finetune", str(data), "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "--resume: no checkpoint-N folder" in capsys.readouterr().err


# ---- video clips --------------------------------------------------------------------------------


def moving_discs_clip(num_frames: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(num_frames, 3, side, side) frames of a red and a blue disc drifting apart, the blue one
    leaving the image on the last frame, and their (num_frames, 2, side, side) masks."""
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    frames, masks = [], []
    for t in range(num_frames):
        red = (xs - (30 + 6 * t)) ** 2 + (ys - 40) ** 2 < 15**2
        blue_x = 90 - 8 * t if t < num_frames - 1 else -100  # gone on the last frame: occluded
        blue = (xs - blue_x) ** 2 + (ys - 85) ** 2 < 18**2
        frame = torch.full((3, side, side), -0.5)
        frame[:, red] = torch.tensor([1.5, -1.0, -1.0])[:, None]
        frame[:, blue] = torch.tensor([-1.0, -1.0, 1.5])[:, None]
        frames.append(frame)
        masks.append(torch.stack([red, blue]).float())
    return torch.stack(frames), torch.stack(masks)


def test_a_clip_loss_falls_and_reaches_the_memory_path():
    from _video_tiny import TINY_IMAGE_SIZE as VIDEO_SIDE
    from _video_tiny import tiny_model
    from edgetam_hf.training.video_clip import clip_loss

    frames, masks = moving_discs_clip(3, VIDEO_SIDE)
    points = torch.tensor([[[30.0, 40.0]], [[90.0, 85.0]]])  # one click on each disc, first frame
    point_labels = torch.ones(2, 1, dtype=torch.long)
    torch.manual_seed(0)
    model = tiny_model().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for step in range(5):
        loss = clip_loss(model, frames, masks, points, point_labels)
        assert loss.focal.shape == loss.dice.shape == loss.object_score.shape == (3,)
        optimizer.zero_grad()
        loss.total.backward()
        if step == 0:
            reached = {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
            assert {"memory_attention", "memory_encoder", "spatial_perceiver", "object_pointer_proj"} <= reached, reached
            assert "memory_temporal_positional_encoding" in reached and "vision_encoder" in reached
        optimizer.step()
        losses.append(loss.total.item())
    assert losses[-1] < 0.8 * losses[0], losses
    with pytest.raises(ValueError, match=r"labels must have shape \(3, num_objects"):
        clip_loss(model, frames, masks[:2], points, point_labels)


def test_initialising_something_else_than_an_edgetam_model_is_a_clear_error():
    from edgetam_hf.training.initialization import initialise_for_training_from_scratch

    with pytest.raises(TypeError, match="model must be an EdgeTamModel or EdgeTamVideoModel, got Linear"):
        initialise_for_training_from_scratch(torch.nn.Linear(2, 2))
