"""A tiny EdgeTamVideoModel with seeded random weights and a small synthetic video, shared by the
video tests that need no reference (sessions, propagation, bad input)."""

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from _reference import randomise_
from edgetam_hf.configuration import EdgeTamVideoConfig
from edgetam_hf.modeling_video import EdgeTamVideoModel
from edgetam_hf.video_processing import EdgeTamVideoProcessor

TINY_IMAGE_SIZE = 128  # image embedding 8x8, low-resolution masks 32x32
VIDEO_HEIGHT, VIDEO_WIDTH = 96, 128
NUM_FRAMES = 5


def tiny_video_config(**overrides) -> EdgeTamVideoConfig:
    """Every width small; the strides (16 for features and memories) are the released model's."""
    hidden, memory_dim = 32, 16
    fields = dict(
        vision_config={"backbone_embed_dims": [16, 16, 32, 32], "backbone_depths": [1, 1, 1, 1], "fpn_hidden_size": hidden},
        prompt_encoder_config={"hidden_size": hidden, "image_size": TINY_IMAGE_SIZE},
        mask_decoder_config={"hidden_size": hidden, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
        image_size=TINY_IMAGE_SIZE,
        num_maskmem=4,
        max_object_pointers_in_encoder=4,
        memory_attention_hidden_size=hidden,
        memory_attention_num_attention_heads=2,
        memory_attention_mlp_hidden_size=64,
        memory_attention_rope_k_sizes=[2, 2],
        perceiver_resampler_num_latents=4,
        perceiver_resampler_num_latents_2d=4,
        perceiver_resampler_hidden_size=memory_dim,
        perceiver_resampler_mlp_intermediate_size=32,
        perceiver_resampler_num_attention_heads=2,
        perceiver_resampler_attention_head_dim=8,
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=memory_dim,
        mask_downsampler_embed_dim=hidden,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=64,
        fill_hole_area=0,
    )
    fields.update(overrides)
    return EdgeTamVideoConfig(**fields)


def tiny_memory_config(**overrides) -> EdgeTamVideoConfig:
    """The tiny config for the memory components on their own: mask prompts at 4x the feature
    resolution (32x32 masks for 8x8 features) instead of the model's 16x."""
    return tiny_video_config(mask_downsampler_total_stride=4, **overrides)


@functools.cache
def _tiny_model_weights() -> dict:
    torch.manual_seed(0)
    model = EdgeTamVideoModel(tiny_video_config())
    randomise_(model, torch.Generator().manual_seed(1))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # a variance must stay positive
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.zero_()
        model.shared_image_embedding.positional_embedding.copy_(model.prompt_encoder.shared_embedding.positional_embedding)
        # The object-score head decides whether masks exist at all: bias it towards "visible".
        model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(3.0)
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def tiny_model(**overrides) -> EdgeTamVideoModel:
    """A fresh tiny model (config overrides allowed) holding the shared seeded weights."""
    model = EdgeTamVideoModel(tiny_video_config(**overrides)).eval()
    model.load_state_dict(_tiny_model_weights())
    return model


def tiny_processor() -> EdgeTamVideoProcessor:
    return EdgeTamVideoProcessor(target_size=TINY_IMAGE_SIZE)


@pytest.fixture(scope="module")
def model() -> EdgeTamVideoModel:
    """The tiny model, shared by a test module (tests that change weights build their own)."""
    return tiny_model()


@pytest.fixture(scope="module")
def processor() -> EdgeTamVideoProcessor:
    return tiny_processor()


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    """The tiny video model saved as a folder: it loads as the image and as the video model."""
    folder = tmp_path_factory.mktemp("tiny_model")
    tiny_model().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def frame_folder(tmp_path_factory) -> Path:
    """The tiny video as a folder of PNG frames 00000.png, 00001.png, ..."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("frames")
    for index, frame in enumerate(video_frames()):
        Image.fromarray(frame).save(folder / f"{index:05d}.png")
    return folder


# The released value, so that the ONNX tracker's NumPy hole filling is exercised.
EXPORTED_FILL_HOLE_AREA = 8


@functools.cache
def _video_array() -> np.ndarray:
    """(NUM_FRAMES, 96, 128, 3) uint8: three coloured ellipses drifting over a shaded background."""
    yy, xx = np.mgrid[0:VIDEO_HEIGHT, 0:VIDEO_WIDTH].astype(np.float32)
    shapes = [((30, 30), (3, 1), (14, 10), (220, 60, 50)), ((90, 35), (-2, 2), (12, 12), (40, 90, 210)),
              ((64, 70), (1, -2), (16, 9), (60, 190, 80))]
    frames = []
    for t in range(NUM_FRAMES):
        frame = np.stack([90 + 40 * np.sin(xx / 17 + t / 3), 110 + 30 * np.cos(yy / 13), 100 + 0 * xx], axis=-1)
        for (cx, cy), (vx, vy), (rx, ry), color in shapes:
            inside = ((xx - cx - vx * t) / rx) ** 2 + ((yy - cy - vy * t) / ry) ** 2 <= 1
            frame[inside] = color
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(frames)


def video_frames() -> list[np.ndarray]:
    return list(_video_array())


def source_frame(t: int) -> int:
    """The frame of the tiny clip shown at `t` in `long_clip` (0 1 2 3 4 3 2 1 0 1 ...)."""
    cycle = 2 * (NUM_FRAMES - 1)
    return min(t % cycle, cycle - t % cycle)


def long_clip(num_frames: int) -> list[np.ndarray]:
    """The tiny clip played forth and back to `num_frames` frames."""
    frames = video_frames()
    return [frames[source_frame(t)] for t in range(num_frames)]


def object_centre(obj: int, frame: int) -> list[float]:
    """The (x, y) centre of ellipse `obj` (1, 2 or 3) on `frame`, in video pixels."""
    (cx, cy), (vx, vy) = [((30, 30), (3, 1)), ((90, 35), (-2, 2)), ((64, 70), (1, -2))][obj - 1]
    return [float(cx + vx * frame), float(cy + vy * frame)]


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine two OpenMP threads wait on
    each other for longer than the work takes (a 15x slowdown measured on 2 shared cores).
    Autouse in every module that imports it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def write_mp4(path, frames, key_frame_interval: int = 4, fps: int = 10) -> None:
    """(height, width, 3) uint8 frames -> an H.264 .mp4 (needs PyAV), a key frame every few frames
    so that reading out of order seeks."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.codec_context.gop_size = key_frame_interval
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decode_mp4(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
