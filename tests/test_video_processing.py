"""EdgeTamVideoProcessor: frames preprocessed as the original video loader does, prompts in the
model's coordinates, mask prompts resized as `add_new_mask` does."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from _video_tiny import TINY_IMAGE_SIZE, VIDEO_HEIGHT, VIDEO_WIDTH, tiny_processor, video_frames
from _video_tiny import single_thread  # noqa: F401  (an autouse fixture)
from edgetam_hf.video_processing import EdgeTamVideoProcessor

MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float32)[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float32)[:, None, None]


def original_frame_pixels(frame: np.ndarray, side: int) -> torch.Tensor:
    """sam2.utils.misc._load_img_as_tensor + normalisation: PIL bicubic resize of the uint8 frame,
    / 255 in float64, stored as float32, then -= mean and /= std in float32."""
    resized = np.array(Image.fromarray(frame).convert("RGB").resize((side, side)))
    pixels = torch.zeros(3, side, side, dtype=torch.float32)
    pixels[:] = torch.from_numpy(resized / 255.0).permute(2, 0, 1)
    pixels -= MEAN
    pixels /= STD
    return pixels


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


def test_frames_are_preprocessed_as_the_original_video_loader():
    frames = video_frames()[:2]
    encoding = EdgeTamVideoProcessor().preprocess_frames(frames)
    assert encoding["pixel_values"].shape == (2, 3, 1024, 1024)
    assert encoding["original_sizes"].tolist() == [[VIDEO_HEIGHT, VIDEO_WIDTH]] * 2
    for pixels, frame in zip(encoding["pixel_values"], frames):
        assert torch.equal(pixels, original_frame_pixels(frame, 1024))


def test_a_folder_of_jpegs_a_list_and_an_array_give_the_same_frames(processor, tmp_path):
    frames = video_frames()[:3]
    # numbered files are read in numeric order (2 before 10), as the original sorts them
    for number, frame in zip((0, 2, 10), frames):
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


def test_streamed_frames_are_preprocessed_like_a_whole_video(processor):
    frame = video_frames()[0]
    streamed = processor(images=frame)["pixel_values"]
    assert torch.equal(streamed[0], processor.preprocess_frames([frame])["pixel_values"][0])
