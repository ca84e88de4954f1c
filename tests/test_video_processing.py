"""EdgeTamVideoProcessor: frames preprocessed as the original video loader does, prompts in the
model's coordinates, mask prompts resized as `add_new_mask` does."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from _video_tiny import TINY_IMAGE_SIZE, VIDEO_HEIGHT, VIDEO_WIDTH, tiny_processor, video_frames
from _video_tiny import single_thread  # noqa: F401  (an autouse fixture)
from edgetam_hf.video.frame_source import FolderFrames
from edgetam_hf.video_processing import EdgeTamVideoProcessor

# ImageNet's mean and std, written out here rather than imported from the code under test.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


def test_a_plain_frame_is_normalised_from_its_uint8_values():
    colour = (200, 17, 90)
    frame = np.broadcast_to(np.array(colour, dtype=np.uint8), (VIDEO_HEIGHT, VIDEO_WIDTH, 3))
    encoding = EdgeTamVideoProcessor().preprocess_frames([frame])
    assert encoding["pixel_values"].shape == (1, 3, 1024, 1024)
    assert encoding["original_sizes"].tolist() == [[VIDEO_HEIGHT, VIDEO_WIDTH]]
    for channel, value in enumerate(colour):
        # / 255 in float64, stored as float32, then normalised in float32 (the original's order)
        unit = np.float32(value / 255.0)
        expected = (unit - np.float32(MEAN[channel])) / np.float32(STD[channel])
        assert torch.all(encoding["pixel_values"][0, channel] == torch.tensor(expected))


def test_frames_are_resized_bicubic_on_uint8():
    """The original resizes the uint8 frame with PIL's default (bicubic) filter: values stay on the
    uint8 grid, and a sharp edge rings past its two colours (a bilinear resize never does)."""
    frame = np.full((VIDEO_HEIGHT, VIDEO_WIDTH, 3), 60, dtype=np.uint8)
    frame[:, VIDEO_WIDTH // 2 :] = 190
    pixels = EdgeTamVideoProcessor().preprocess_frames([frame])["pixel_values"][0, 0].double()
    uint8_values = (pixels * STD[0] + MEAN[0]) * 255
    assert torch.allclose(uint8_values, uint8_values.round(), atol=1e-3)
    assert uint8_values.min() < 59.5 and uint8_values.max() > 190.5


@pytest.mark.skipif(not os.environ.get("EDGETAM_FIXTURES"), reason="EDGETAM_FIXTURES is not set")
def test_the_fixture_frames_decode_as_the_original_decoded_them(processor):
    from safetensors import safe_open

    fixtures = Path(os.environ["EDGETAM_FIXTURES"]) / "original_seed0"
    with safe_open(str(fixtures / "oracle.safetensors"), "pt") as oracle:
        decoded = oracle.get_tensor("input/video_frames_decoded_uint8")
    reader = FolderFrames(fixtures / "frames")
    assert len(reader) == len(decoded)
    for index, expected in enumerate(decoded):
        assert np.array_equal(np.asarray(reader.read(index)), expected.numpy())


def test_a_folder_of_jpegs_a_list_and_an_array_give_the_same_frames(processor, tmp_path):
    frames = video_frames()[:3]
    # numbered files are read in numeric order (2 before 10), as the original sorts them
    for number, frame in zip((0, 2, 10), frames, strict=True):
        Image.fromarray(frame).save(tmp_path / f"{number}.jpg", quality=95)
    (tmp_path / "notes.txt").write_text("not a frame")
    decoded = [np.array(Image.open(tmp_path / f"{number}.jpg").convert("RGB")) for number in (0, 2, 10)]
    from_folder = processor.preprocess_frames(str(tmp_path))["pixel_values"]
    from_arrays = processor.preprocess_frames(decoded)["pixel_values"]
    from_tensor = processor.preprocess_frames(torch.from_numpy(np.stack(decoded)))["pixel_values"]
    from_pil = processor.preprocess_frames([Image.open(tmp_path / f"{n}.jpg") for n in (0, 2, 10)])["pixel_values"]
    assert torch.equal(from_folder, from_arrays) and torch.equal(from_folder, from_pil)
    assert torch.equal(from_folder, from_tensor)
    session = processor.init_video_session(tmp_path)
    assert session.num_frames == 3 and (session.video_height, session.video_width) == (VIDEO_HEIGHT, VIDEO_WIDTH)


def test_clicks_and_boxes_in_model_coordinates(processor):
    session = processor.init_video_session(video_frames())
    processor.add_inputs_to_inference_session(
        session, 1, [4, 9],
        input_points=[[[[10.3, 20.7], [30.0, 40.0]], [[50.5, 60.5]]]],
        input_labels=[[[1, 0], [1]]],
    )
    processor.add_inputs_to_inference_session(session, 2, 4, input_boxes=[[[5.0, 6.0, 70.0, 80.0]]])
    scale = torch.tensor([VIDEO_WIDTH, VIDEO_HEIGHT], dtype=torch.float32)
    # (x / width, y / height) * size in float32, as add_new_points_or_box computes it; no padding
    two_clicks = session.objects[4].point_prompts[1]
    expected = torch.tensor([[[10.3, 20.7], [30.0, 40.0]]], dtype=torch.float32) / scale * TINY_IMAGE_SIZE
    assert torch.equal(two_clicks.coordinates, expected) and two_clicks.labels.tolist() == [[1, 0]]
    assert session.objects[9].point_prompts[1].coordinates.shape == (1, 1, 2)
    box = session.objects[4].point_prompts[2]
    expected = torch.tensor([[[5.0, 6.0], [70.0, 80.0]]], dtype=torch.float32) / scale * TINY_IMAGE_SIZE
    assert torch.equal(box.coordinates, expected) and box.labels.tolist() == [[2, 3]]
    # more clicks join the earlier ones when asked; a box always replaces
    processor.add_inputs_to_inference_session(
        session, 2, 4, input_points=[[[[1.0, 2.0]]]], input_labels=[[[0]]], clear_old_inputs=False
    )
    assert session.objects[4].point_prompts[2].labels.tolist() == [[2, 3, 0]]
    assert [(p.obj_id, p.frame_idx) for p in session.pending_prompts] == [(4, 1), (9, 1), (4, 2), (4, 2)]


def test_mask_prompt_resized_as_the_original(processor):
    session = processor.init_video_session(video_frames())
    mask = np.zeros((VIDEO_HEIGHT, VIDEO_WIDTH), dtype=bool)
    mask[10:50, 20:100] = True
    processor.add_inputs_to_inference_session(session, 0, 3, input_masks=[mask])
    expected = F.interpolate(
        torch.from_numpy(mask).float()[None, None], size=(TINY_IMAGE_SIZE,) * 2, mode="bilinear",
        align_corners=False, antialias=True,
    )
    assert torch.equal(session.objects[3].mask_prompts[0], (expected >= 0.5).float())


def test_streamed_frames_are_preprocessed_like_a_video_read_from_files(processor, tmp_path):
    frames = video_frames()[:2]
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{index:05d}.png")  # lossless
    session = processor.init_video_session(str(tmp_path))
    for index, frame in enumerate(frames):
        streamed = processor(images=frame)["pixel_values"]
        assert torch.equal(streamed, session.get_frame(index))
