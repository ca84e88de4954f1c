"""EdgeTamVideoModel on a tiny config: many objects, objects joining and leaving, reverse and
streamed tracking, mask prompts, corrections, memory precision, feature cache, default config."""

import pytest
import torch

from _reference import transformers_video_model
from _video_tiny import NUM_FRAMES, VIDEO_HEIGHT, VIDEO_WIDTH, object_centre, tiny_model, video_frames
from _video_tiny import model, processor, single_thread  # noqa: F401  (fixtures)
from edgetam_hf.configuration import EdgeTamVideoConfig
from edgetam_hf.modeling_video import EdgeTamVideoModel
from edgetam_hf.video.hole_filling import fill_holes
from _tolerance import assert_same_logits


def _session(processor, frames=None, **kwargs):
    return processor.init_video_session(video_frames() if frames is None else frames, **kwargs)


def _click(processor, session, frame_idx, obj_ids, point_of=None, label=1):
    obj_ids = [obj_ids] if isinstance(obj_ids, int) else obj_ids
    points = [[point_of(obj) if point_of else object_centre(obj, frame_idx)] for obj in obj_ids]
    processor.add_inputs_to_inference_session(
        session, frame_idx, obj_ids, input_points=[points], input_labels=[[[label]] * len(obj_ids)]
    )


def _masks_by_frame(outputs) -> dict[int, torch.Tensor]:
    return {output.frame_idx: output.pred_masks for output in outputs}


def test_default_config_matches_the_original_checkpoint():
    model = EdgeTamVideoModel(EdgeTamVideoConfig())
    # the parameter count of Meta's edgetam.pt (edgetam_random_seed0.keys.json)
    assert sum(parameter.numel() for parameter in model.parameters()) == 13_895_794


def test_state_dict_names_and_shapes_are_transformers():
    reference = transformers_video_model()
    # transformers' defaults switch on two parts EdgeTAM's checkpoint does not have
    ours = EdgeTamVideoModel(
        EdgeTamVideoConfig(enable_occlusion_spatial_embedding=True, enable_temporal_pos_encoding_for_object_pointers=True)
    )
    assert {name: tensor.shape for name, tensor in ours.state_dict().items()} == {
        name: tensor.shape for name, tensor in reference.state_dict().items()
    }


def test_eight_objects_in_one_session_equal_eight_sessions(model, processor):
    obj_ids = [1, 2, 3, 4, 5, 6, 7, 8]
    points = {obj: [8.0 + 14 * (obj - 1), 10.0 + 9 * (obj - 1)] for obj in obj_ids}
    session = _session(processor)
    _click(processor, session, 0, obj_ids, point_of=points.get)
    first = model(session, frame_idx=0)
    together = list(model.propagate_in_video_iterator(session))
    assert first.object_ids == obj_ids and first.pred_masks.shape == (8, 1, 32, 32)
    assert [output.frame_idx for output in together] == list(range(NUM_FRAMES))
    for obj in (1, 8):
        alone = _session(processor)
        _click(processor, alone, 0, obj, point_of=points.get)
        model(alone, frame_idx=0)
        for joint, single in zip(together, model.propagate_in_video_iterator(alone), strict=True):
            assert_same_logits(joint.pred_masks[obj - 1], single.pred_masks[0])


def test_every_prompted_frame_conditions_every_object(model, processor):
    session = _session(processor)
    _click(processor, session, 0, 1)
    _click(processor, session, 2, 2)
    prompt_output = model(session, frame_idx=2)
    # the original's placeholder for an object without a result on a prompted frame
    assert bool((prompt_output.pred_masks[0] == -1024).all()) and prompt_output.object_score_logits[0] == 10.0
    outputs = _masks_by_frame(model.propagate_in_video_iterator(session))
    assert bool((outputs[0][1] == -1024).all()) and bool((outputs[2][0] == -1024).all())
    assert session.consolidated_conditioning_frames == {0, 2}
    for tracked in session.objects.values():
        assert list(tracked.results.conditioning) == [0, 2]


def test_object_added_after_tracking_is_tracked_as_if_added_before(model, processor):
    late = _session(processor)
    _click(processor, late, 0, 1)
    model(late, frame_idx=0)
    before = _masks_by_frame(model.propagate_in_video_iterator(late))
    _click(processor, late, 3, 2)
    prompt_output = model(late, frame_idx=3)
    assert prompt_output.object_ids == [1, 2]
    # Object 1 keeps its tracked result on frame 3 next to object 2's new prompt result.
    torch.testing.assert_close(prompt_output.pred_masks[0], before[3][0], rtol=0, atol=0)
    after = _masks_by_frame(model.propagate_in_video_iterator(late))
    torch.testing.assert_close(after[0][0], before[0][0], rtol=0, atol=0)
    # A prompted frame conditions every object: object 2 holds the original's placeholder on frame 0.
    assert bool((after[0][1] == -1024).all())

    early = _session(processor)
    _click(processor, early, 0, 1)
    _click(processor, early, 3, 2)
    model(early, frame_idx=3)
    expected = _masks_by_frame(model.propagate_in_video_iterator(early))
    for frame_idx in range(NUM_FRAMES):
        assert_same_logits(after[frame_idx][1], expected[frame_idx][1])


def test_removing_an_object_leaves_the_others_unchanged(model, processor):
    session = _session(processor)
    _click(processor, session, 0, [1, 2, 3])
    model(session, frame_idx=0)
    before = _masks_by_frame(model.propagate_in_video_iterator(session))
    assert model.remove_object(session, 2)[0].object_ids == [1, 3]
    assert session.obj_ids == [1, 3]
    for frame_idx in range(NUM_FRAMES):
        stored = torch.cat([session.objects[obj].results.find(frame_idx).mask_logits for obj in (1, 3)])
        torch.testing.assert_close(stored, before[frame_idx][[0, 2]], rtol=0, atol=0)
    again = _masks_by_frame(model.propagate_in_video_iterator(session))
    for frame_idx in range(NUM_FRAMES):
        assert_same_logits(again[frame_idx], before[frame_idx][[0, 2]])
    model.remove_object(session, 1)
    model.remove_object(session, 3)
    assert session.obj_ids == []


def test_reverse_tracking_equals_forward_tracking_of_the_reversed_video(model, processor):
    last = NUM_FRAMES - 1
    point = object_centre(2, last)
    backwards = _session(processor)
    _click(processor, backwards, last, 2, point_of=lambda obj: point)
    model(backwards, frame_idx=last)
    reverse_outputs = list(model.propagate_in_video_iterator(backwards, reverse=True))
    assert [output.frame_idx for output in reverse_outputs] == list(range(last, -1, -1))

    forwards = _session(processor, frames=video_frames()[::-1])
    _click(processor, forwards, 0, 2, point_of=lambda obj: point)
    model(forwards, frame_idx=0)
    for reverse_output, forward_output in zip(reverse_outputs, model.propagate_in_video_iterator(forwards), strict=True):
        assert_same_logits(reverse_output.pred_masks, forward_output.pred_masks)


def test_start_frame_and_maximum_number_of_frames(model, processor):
    session = _session(processor)
    _click(processor, session, 2, 1)
    model(session, frame_idx=2)
    assert [o.frame_idx for o in model.propagate_in_video_iterator(session, max_frame_num_to_track=2)] == [2, 3, 4]
    frames = [o.frame_idx for o in model.propagate_in_video_iterator(session, start_frame_idx=4, reverse=True)]
    assert frames == [4, 3, 2, 1, 0]
    # as in the original, tracking backwards from frame 0 visits nothing
    assert list(model.propagate_in_video_iterator(session, start_frame_idx=0, reverse=True)) == []
    # transformers' argument is accepted, and a bad value is named
    assert [o.frame_idx for o in model.propagate_in_video_iterator(session, 3, show_progress_bar=False)] == [3, 4]
    with pytest.raises(ValueError, match="show_progress_bar must be True or False"):
        list(model.propagate_in_video_iterator(session, show_progress_bar="yes"))


def test_mask_prompt_is_the_output_on_its_frame(model, processor):
    session = _session(processor)
    mask = torch.zeros(VIDEO_HEIGHT, VIDEO_WIDTH, dtype=torch.bool)
    mask[20:60, 30:90] = True
    processor.add_inputs_to_inference_session(session, 0, 7, input_masks=[mask])
    output = model(session, frame_idx=0)
    # The mask becomes logits of +-10 and the object counts as present (score 20 * 1 - 10).
    assert output.object_score_logits.tolist() == [[10.0]]
    video_masks = processor.post_process_masks([output.pred_masks], [[VIDEO_HEIGHT, VIDEO_WIDTH]])[0][0, 0]
    assert (video_masks ^ mask).float().mean().item() < 0.01
    outputs = list(model.propagate_in_video_iterator(session))
    assert len(outputs) == NUM_FRAMES and outputs[0].pred_masks.equal(output.pred_masks)


def test_correction_click_is_kept_by_later_tracking(model, processor):
    session = _session(processor)
    _click(processor, session, 0, [1, 2])
    model(session, frame_idx=0)
    before = _masks_by_frame(model.propagate_in_video_iterator(session))
    _click(processor, session, 3, 1, point_of=lambda obj: [60.0, 40.0], label=0)
    corrected = model(session, frame_idx=3)
    assert not corrected.pred_masks[0].equal(before[3][0])
    torch.testing.assert_close(corrected.pred_masks[1], before[3][1], rtol=0, atol=0)
    kept = {frame_idx: session.objects[1].results.tracked[frame_idx] for frame_idx in (1, 2, 4)}
    after = _masks_by_frame(model.propagate_in_video_iterator(session))
    torch.testing.assert_close(after[3], corrected.pred_masks, rtol=0, atol=0)
    for frame_idx in (0, 1, 2):
        torch.testing.assert_close(after[frame_idx], before[frame_idx], rtol=0, atol=0)
    # frames whose memories did not change are not recomputed; those after the correction are
    assert session.objects[1].results.tracked[1] is kept[1] and session.objects[1].results.tracked[2] is kept[2]
    assert session.objects[1].results.tracked[4] is not kept[4]
    # Frame 3 is not a conditioning frame: the memory of both objects there was re-encoded.
    assert session.consolidated_tracked_frames == {3} and session.consolidated_conditioning_frames == {0}


@pytest.mark.parametrize("change", ["load_state_dict", "edit_in_place_and_weights_changed", "optimizer_step"])
def test_changed_weights_are_not_served_from_earlier_results(processor, change):
    changing_model = tiny_model()
    session = _session(processor)
    _click(processor, session, 0, 1)
    changing_model(session, frame_idx=0)
    before = _masks_by_frame(changing_model.propagate_in_video_iterator(session))
    if change == "load_state_dict":
        weights = changing_model.state_dict()
        weights["memory_attention.layer_norm.bias"] = weights["memory_attention.layer_norm.bias"] + 0.5
        changing_model.load_state_dict(weights)
    elif change == "optimizer_step":
        bias = changing_model.memory_attention.layer_norm.bias
        optimizer = torch.optim.SGD([bias], lr=1.0)
        bias.grad = torch.full_like(bias, -0.5)
        optimizer.step()  # a training step changes the weights with no call of ours
    else:
        with torch.no_grad():
            changing_model.memory_attention.layer_norm.bias.add_(0.5)
        changing_model.weights_changed()  # what an in-place edit must be followed by
    after = _masks_by_frame(changing_model.propagate_in_video_iterator(session))
    assert after[0].equal(before[0]) and not after[1].equal(before[1])


def test_unchanged_model_serves_earlier_results_after_eval(processor):
    # eval() of a model already in eval changes nothing; a mode switch may change what the model
    # computes (dropout, folded convs): results are redone.
    model = tiny_model()
    session = _session(processor)
    _click(processor, session, 0, 1)
    model(session, frame_idx=0)
    list(model.propagate_in_video_iterator(session))
    kept = session.objects[1].results.tracked[1]
    list(model.propagate_in_video_iterator(session))
    assert session.objects[1].results.tracked[1] is kept
    model.eval()
    list(model.propagate_in_video_iterator(session))
    assert session.objects[1].results.tracked[1] is kept
    model.train().eval()
    list(model.propagate_in_video_iterator(session))
    assert session.objects[1].results.tracked[1] is not kept


def test_a_model_loaded_under_inference_mode_tracks(processor):
    with torch.inference_mode():
        inference_model = tiny_model()
        session = _session(processor)
        _click(processor, session, 0, 1)
        inference_model(session, frame_idx=0)
        first = _masks_by_frame(inference_model.propagate_in_video_iterator(session))
        again = _masks_by_frame(inference_model.propagate_in_video_iterator(session))
    assert all(again[frame_idx].equal(first[frame_idx]) for frame_idx in range(NUM_FRAMES))


def test_tracking_keeps_no_gradients_while_the_steps_keep_them_for_training(model, processor):
    # The model's steps leave the grad mode to their callers: the session and the propagation run
    # them without gradients (so the trunk may fold), training gets gradients through them.
    assert torch.is_grad_enabled()
    session = _session(processor)
    _click(processor, session, 0, 1)
    model(session, frame_idx=0)
    list(model.propagate_in_video_iterator(session, max_frame_num_to_track=1))
    results = session.objects[1].results
    stored = [results.conditioning[0], results.tracked[1]]
    assert not any(result.memory_tokens.requires_grad or result.object_pointer.requires_grad for result in stored)
    assert not session.frame_features(model, 1).vision_features.requires_grad
    features = model.get_frame_features(session.get_frame(1))
    side = model.config.image_size
    memory = model.encode_memory(features, torch.zeros(1, 1, side, side), torch.ones(1, 1), binarize_mask=False)
    assert features.vision_features.requires_grad and memory.memory_tokens.requires_grad


def test_clearing_the_prompts_of_a_frame(model, processor):
    session = _session(processor)
    _click(processor, session, 0, 1)
    _click(processor, session, 3, 2)
    model(session, frame_idx=3)
    list(model.propagate_in_video_iterator(session))
    assert session.consolidated_conditioning_frames == {0, 3}
    output = model.clear_prompts_in_frame(session, 3, 2)
    assert output.frame_idx == 3 and output.object_ids == [1, 2]
    # Without prompts left, frame 3 is an ordinary frame again, re-tracked by the next propagation.
    assert session.consolidated_conditioning_frames == {0}
    assert 3 not in session.objects[1].tracked_frames
    outputs = _masks_by_frame(model.propagate_in_video_iterator(session))
    assert not outputs[3][1].equal(output.pred_masks[1])


def test_streaming_frames_one_by_one_equals_the_whole_video(model, processor):
    whole = _session(processor)
    _click(processor, whole, 0, [1, 3])
    expected = [model(whole, frame_idx=0)] + list(model.propagate_in_video_iterator(whole))[1:]

    streamed = processor.init_video_session()
    processor.add_inputs_to_inference_session(
        streamed, 0, [1, 3], input_points=[[[object_centre(1, 0)], [object_centre(3, 0)]]],
        input_labels=[[[1], [1]]], original_size=(VIDEO_HEIGHT, VIDEO_WIDTH),
    )
    for frame, reference in zip(video_frames(), expected, strict=True):
        pixel_values = processor(images=frame)["pixel_values"]
        output = model(streamed, frame=pixel_values[0])
        assert output.frame_idx == reference.frame_idx
        assert_same_logits(output.pred_masks, reference.pred_masks)
        assert_same_logits(output.object_score_logits, reference.object_score_logits)


def test_memory_in_float32_or_bfloat16(model, processor):
    outputs = {}
    for memory_dtype in (torch.bfloat16, torch.float32):
        session = _session(processor, memory_dtype=memory_dtype)
        _click(processor, session, 0, 1)
        model(session, frame_idx=0)
        outputs[memory_dtype] = _masks_by_frame(model.propagate_in_video_iterator(session))
        assert session.objects[1].results.tracked[2].memory_tokens.dtype == memory_dtype
    bf16, fp32 = outputs[torch.bfloat16], outputs[torch.float32]
    assert bf16[0].equal(fp32[0])  # the prompted frame reads no memory
    assert not bf16[1].equal(fp32[1])  # bfloat16 rounding of the memory shows ...
    torch.testing.assert_close(bf16[NUM_FRAMES - 1], fp32[NUM_FRAMES - 1], rtol=0, atol=0.5)  # ... a little


def test_feature_cache_is_bounded(model, processor):
    session = _session(processor, max_vision_features_cache_size=2)
    _click(processor, session, 0, 1)
    model(session, frame_idx=0)
    list(model.propagate_in_video_iterator(session))
    assert session.num_cached_frames == 2


def test_frames_are_stored_on_the_storage_device_in_the_storage_dtype(processor):
    # "meta" stands in for a device other than the inference one, so that this can fail on a
    # CPU-only run: the frames go there without being read.
    session = _session(processor, video_storage_device="meta")
    assert all(session.stored_frame_device(t).type == "meta" for t in range(NUM_FRAMES))
    # Frames stored in bfloat16 are handed to the model in float32 on the inference device.
    session = _session(processor, dtype=torch.bfloat16)
    stored = processor.preprocess_frames(video_frames())["pixel_values"]
    frame = session.get_frame(2)
    assert frame.dtype == torch.float32 and frame.device == session.inference_device
    assert frame.equal(stored[2:3].to(torch.bfloat16).float())
    assert not frame.equal(stored[2:3])


def test_hole_filling_follows_the_config(processor):
    outputs = {}
    for area in (0, 40):
        session = _session(processor)
        _click(processor, session, 0, 1)
        outputs[area] = tiny_model(fill_hole_area=area)(session, frame_idx=0).pred_masks
    torch.testing.assert_close(outputs[40], fill_holes(outputs[0], 40), rtol=0, atol=0)
