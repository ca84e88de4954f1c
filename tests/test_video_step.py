"""The tracking step as a function of tensors: fixed slot counts with validity masks, a shared
frame, bfloat16 weights."""

import pytest
import torch

from _video_tiny import model, object_centre, processor, single_thread, tiny_model, video_frames  # noqa: F401
from edgetam_hf.tracking.rules import TrackingRules, memory_plan
from edgetam_hf.video.memory_bank import gather_memory_slots
from edgetam_hf.video.step import track_step
from edgetam_hf.video.types import MemorySlots

NUM_OBJECTS = 2


def _tracked_session(model, processor, num_frames_tracked=3):
    session = processor.init_video_session(video_frames())
    obj_ids = list(range(1, NUM_OBJECTS + 1))
    processor.add_inputs_to_inference_session(
        session, 0, obj_ids, input_points=[[[object_centre(obj, 0)] for obj in obj_ids]], input_labels=[[[1]] * NUM_OBJECTS]
    )
    model(session, frame_idx=0)
    list(model.propagate_in_video_iterator(session, max_frame_num_to_track=num_frames_tracked - 1))
    return session


def _step_inputs(model, session, frame_idx, **slot_counts):
    objects = list(session.objects.values())
    plan = memory_plan(TrackingRules.read(model.config), objects[0].results, frame_idx, False, session.num_frames)
    stored = [[tracked.results.of_kind(entry.is_conditioning)[entry.frame_idx] for entry in plan.entries] for tracked in objects]
    return session.frame_features(model, frame_idx), gather_memory_slots(plan, stored, session.inference_device, **slot_counts)


def _padded(slots: MemorySlots, extra_memories: int, extra_pointers: int) -> MemorySlots:
    """The same memories with empty slots mixed in: random contents, marked invalid."""
    generator = torch.Generator().manual_seed(0)
    batch_size, num_memories, tokens, dim = slots.memory_tokens.shape
    num_pointers, hidden = slots.object_pointers.shape[1:]
    junk_memories = torch.randn(batch_size, extra_memories, tokens, dim, generator=generator).to(slots.memory_tokens.dtype)
    junk_pointers = torch.randn(batch_size, extra_pointers, hidden, generator=generator)
    # Empty slots first for memories, last for pointers: the position of a slot must not matter.
    return MemorySlots(
        memory_tokens=torch.cat((junk_memories, slots.memory_tokens), dim=1),
        memory_temporal_slot=torch.cat((torch.full((extra_memories,), 3), slots.memory_temporal_slot)),
        memory_valid=torch.cat(
            (torch.zeros(batch_size, extra_memories, dtype=torch.bool), torch.ones(batch_size, num_memories, dtype=torch.bool)),
            dim=1,
        ),
        object_pointers=torch.cat((slots.object_pointers, junk_pointers.to(slots.object_pointers.dtype)), dim=1),
        pointer_temporal_distance=torch.cat((slots.pointer_temporal_distance, torch.arange(extra_pointers) + 5)),
        pointer_valid=torch.cat(
            (torch.ones(batch_size, num_pointers, dtype=torch.bool), torch.zeros(batch_size, extra_pointers, dtype=torch.bool)),
            dim=1,
        ),
    )


def _close(actual, expected, relative=1e-5):
    """Two computation paths agree within float rounding relative to the magnitude compared."""
    tolerance = relative * max(expected.abs().max().item(), 1.0)
    assert (actual.float() - expected.float()).abs().max().item() <= tolerance


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_empty_slots_marked_invalid_change_nothing(model, processor, implementation):
    session = _tracked_session(model, processor)
    features, slots = _step_inputs(model, session, 3)
    model.set_attn_implementation(implementation)
    try:
        exact = track_step(model, features, slots, session.memory_position, session.num_frames, True)
        padded = track_step(model, features, _padded(slots, 2, 3), session.memory_position, session.num_frames, True)
    finally:
        model.set_attn_implementation("sdpa")
    for name in ("mask_logits", "object_pointer", "object_score_logits", "memory_tokens"):
        _close(getattr(padded, name), getattr(exact, name))


def test_a_shared_frame_equals_the_frame_given_per_object(model, processor):
    session = _tracked_session(model, processor)
    features, slots = _step_inputs(model, session, 3)
    shared = track_step(model, features, slots, session.memory_position, session.num_frames, True)
    per_object = track_step(model, features.expand(NUM_OBJECTS), slots, session.memory_position, session.num_frames, True)
    for name in ("mask_logits", "object_pointer", "memory_tokens"):
        _close(getattr(shared, name), getattr(per_object, name))


def test_outputs_have_the_documented_shapes_and_dtypes(model, processor):
    session = _tracked_session(model, processor)
    features, slots = _step_inputs(model, session, 3)
    output = track_step(model, features, slots, session.memory_position, session.num_frames, True)
    low_res = model.prompt_encoder.mask_input_size
    assert output.mask_logits.shape == (NUM_OBJECTS, 1, *low_res) and output.mask_logits.dtype == torch.float32
    assert output.object_score_logits.shape == (NUM_OBJECTS, 1) and output.object_score_logits.dtype == torch.float32
    assert output.object_pointer.shape == (NUM_OBJECTS, model.config.vision_config.fpn_hidden_size)
    assert output.memory_tokens.shape == output.memory_position.shape == (NUM_OBJECTS, *session.memory_position.shape[1:])


def test_a_bfloat16_model_tracks_close_to_float32(processor):
    # transformers users cast the model and make the session in bfloat16.
    outputs = {}
    for dtype in (torch.float32, torch.bfloat16):
        cast_model = tiny_model().to(dtype)
        session = processor.init_video_session(video_frames(), dtype=dtype)
        processor.add_inputs_to_inference_session(session, 0, 1, input_points=[[[object_centre(1, 0)]]], input_labels=[[[1]]])
        cast_model(session, frame_idx=0)
        outputs[dtype] = torch.cat([output.pred_masks for output in cast_model.propagate_in_video_iterator(session)])
    assert outputs[torch.bfloat16].dtype == torch.float32 and torch.isfinite(outputs[torch.bfloat16]).all()
    # bfloat16 keeps 8 significant bits (eps 2**-7). Measured on this clip: logits move by ~2.6 eps x
    # the clip's largest logit (rounding through ~60 layers and the memory); 8 leaves a margin of 3
    # for other CPUs' kernels. Masks differ only where the float32 logit is closer to 0 than that.
    tolerance = 8 * torch.finfo(torch.bfloat16).eps * outputs[torch.float32].abs().max().item()
    torch.testing.assert_close(outputs[torch.bfloat16], outputs[torch.float32], rtol=0, atol=tolerance)
    masks_fp32, masks_bf16 = outputs[torch.float32] > 0, outputs[torch.bfloat16] > 0
    iou = (masks_fp32 & masks_bf16).sum() / (masks_fp32 | masks_bf16).sum()
    assert iou > 0.9


@pytest.mark.slow  # one dynamo trace of the step (~20 s)
def test_fixed_slots_compile_one_graph_for_every_memory_length(model, processor):
    """Frames 1 and 4 read 1 and 4 memories; in the fixed layout (validity masks) the compiled
    step is traced once. (That empty slots change nothing: `test_empty_slots_marked_invalid_change_nothing`.)"""
    from torch._dynamo.utils import counters

    session = _tracked_session(model, processor, num_frames_tracked=5)
    fixed = dict(num_memory_slots=model.config.num_maskmem, num_pointer_slots=model.config.max_object_pointers_in_encoder)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(track_step, backend="eager", fullgraph=True)
    with torch.no_grad():
        for frame_idx in (1, 4):
            features, slots = _step_inputs(model, session, frame_idx, **fixed)
            assert int(slots.memory_valid[0].sum()) == frame_idx and slots.memory_tokens.shape[1] == model.config.num_maskmem
            compiled(model, features, slots, session.memory_position, session.num_frames, True)
    torch._dynamo.reset()
    assert counters["stats"]["unique_graphs"] == 1
