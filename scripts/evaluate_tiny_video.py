"""J&F of the bundled tiny models in video, on the held-out rendered clips and on the demo's clip.

    PYTHONPATH=src python scripts/evaluate_tiny_video.py [--model src/edgetam_hf/tiny_model]
        [--video-model src/edgetam_hf/tiny_video_model]

The bundled tiny model is an image model. This script builds a tiny `EdgeTamVideoModel` from it
(`tiny_video_config`): its trunk is the model's trained weights, its memory parts (memory
encoder, spatial perceiver, memory attention, object-pointer projection, temporal encodings) and
its prompt encoder and mask decoder either those trained by `scripts/train_tiny_video.py`
(`--video-model`, the folder it wrote; by default the one shipped in src/edgetam_hf/tiny_video_model)
or, memory parts, seeded random weights (layers from PyTorch's defaults, `training/initialization.py`;
the same ones `train_tiny_video.py` starts from) beside the image model's decoder.

Two sets of clips, each object prompted by the bounding box of its mask on frame 0 and tracked with
`edgetam-hf annotate`'s code, scored as the DAVIS 2017 benchmark does (`edgetam-hf evaluate`: first
and last frames not scored):
- the held-out clips (`write_held_out_clips`): HELD_OUT_CLIPS clips of rendered shapes that move,
  turn, cross and leave and re-enter the frame, from seeds fixed before training and never trained on;
- the demo's clip (`edgetam_hf.sample_media`: 16 frames of 640x480, a red disc drifting, a blue
  rectangle sliding in front of it, a green triangle), which no training run or choice looked at.

For each, four figures: trained image parts with the trained memory parts; trained image parts
with random memory parts; every weight random; and the image model alone given the ground-truth
box of every object on every frame (no tracking: the ceiling a trained memory works towards).
Everything is seeded and runs on one CPU thread.
"""
import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

# In a checkout, the tests' shim lets a torchvision that breaks `import transformers` import.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from environment import install_torchvision_shim  # noqa: E402

install_torchvision_shim()
from edgetam_hf import EdgeTamModel  # noqa: E402
from edgetam_hf.cli.annotate import annotate_video, lowest_id_on_top  # noqa: E402
from edgetam_hf.cli.media import save_label_png  # noqa: E402
from edgetam_hf.cli.models import processor_for  # noqa: E402
from edgetam_hf.cli.segment import segment_image  # noqa: E402
from edgetam_hf.cli.annotate_jobs import Prompt, VideoJob  # noqa: E402
from edgetam_hf.configuration import EdgeTamVideoConfig  # noqa: E402
from edgetam_hf.evaluation import evaluate_folders  # noqa: E402
from edgetam_hf.evaluation.davis import read_label_png  # noqa: E402
from edgetam_hf.modeling_video import EdgeTamVideoModel  # noqa: E402
from edgetam_hf.processing import EdgeTamProcessor  # noqa: E402
from edgetam_hf.sample_media import render_sample_clip, render_sample_frame_masks  # noqa: E402
from edgetam_hf.training.initialization import initialise_for_training_from_scratch  # noqa: E402
from edgetam_hf.training.shapes import render_shapes_clip  # noqa: E402
from edgetam_hf.video_processing import EdgeTamVideoProcessor  # noqa: E402

logger = logging.getLogger("evaluate_tiny_video")
BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "src" / "edgetam_hf" / "tiny_model"
BUNDLED_VIDEO_MODEL = BUNDLED_MODEL.parent / "tiny_video_model"
CLIP_NAME = "sample"
MEMORY_SEED = 0
# The held-out clips, fixed before the bundled video model was trained: clip i is rendered from
# numpy seed (HELD_OUT_SEED, i); training clips come from (train_tiny_video.TRAIN_SEED, step).
HELD_OUT_SEED, HELD_OUT_CLIPS, HELD_OUT_FRAMES = 5_000_011, 8, 24
HELD_OUT_SIZE = (320, 240)  # the demo clip's aspect ratio; the processor squeezes them to the model's square
# 2-5 shapes, each moving up to 5% of the image side and turning up to 0.1 rad a frame, bouncing off
# walls 20% of a side outside the image: shapes cross, hide one another, leave and come back.
CLIP_MOTION = {"max_shapes": 5, "min_objects": 2, "max_speed": 0.05, "max_turn": 0.1, "wall_margin": 0.2}
# The weights a trained video model must share with the image model: its trunk (the prompt
# encoder and mask decoder may train with the memory).
IMAGE_TRUNK_PARTS = ("vision_encoder", "shared_image_embedding", "no_memory_embedding")


def tiny_video_config(image_config) -> EdgeTamVideoConfig:
    """The image model's parts with memory parts as narrow as its decoder (features 1/16 of the input)."""
    hidden = image_config.mask_decoder_config.hidden_size
    grid = image_config.prompt_encoder_config.image_size // 16
    return EdgeTamVideoConfig(
        vision_config=image_config.vision_config.to_dict(),
        prompt_encoder_config=image_config.prompt_encoder_config.to_dict(),
        mask_decoder_config=image_config.mask_decoder_config.to_dict(),
        image_size=image_config.prompt_encoder_config.image_size,
        memory_attention_hidden_size=hidden,
        memory_attention_num_attention_heads=4,
        memory_attention_mlp_hidden_size=4 * hidden,
        memory_attention_rope_feat_sizes=[grid, grid],
        memory_attention_rope_k_sizes=[grid // 4, grid // 4],
        perceiver_resampler_num_latents=16,
        perceiver_resampler_num_latents_2d=(grid // 4) ** 2,
        perceiver_resampler_hidden_size=hidden // 2,
        perceiver_resampler_mlp_intermediate_size=2 * hidden,
        perceiver_resampler_num_attention_heads=2,
        perceiver_resampler_attention_head_dim=hidden // 4,
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=hidden // 2,
        mask_downsampler_embed_dim=hidden,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=4 * hidden,
    )


def video_model_from_image_model(image_model: EdgeTamModel, random_image_parts: bool) -> EdgeTamVideoModel:
    """The video model sharing `image_model`'s trained weights (unless `random_image_parts`), its
    memory parts drawn from PyTorch's defaults with torch seed MEMORY_SEED."""
    torch.manual_seed(MEMORY_SEED)
    video_model = initialise_for_training_from_scratch(EdgeTamVideoModel(tiny_video_config(image_model.config)))
    if not random_image_parts:
        _, unexpected = video_model.load_state_dict(image_model.state_dict(), strict=False)
        if unexpected:
            raise ValueError(f"the image model holds weights the video model lacks: {unexpected[:5]}")
    return video_model.eval()


def trained_video_model(folder: Path, image_model: EdgeTamModel) -> EdgeTamVideoModel:
    """The video model saved in `folder` by scripts/train_tiny_video.py; its trunk (`IMAGE_TRUNK_PARTS`)
    must be `image_model`'s (else the figure would not be of this image model)."""
    video_model = EdgeTamVideoModel.from_pretrained(str(folder)).eval()
    video_weights = video_model.state_dict()
    for name, image_weight in image_model.state_dict().items():
        if name.split(".")[0] in IMAGE_TRUNK_PARTS and not torch.equal(video_weights[name], image_weight):
            raise ValueError(f"--video-model {folder} was not trained on --model's image weights: {name} differs")
    return video_model


def write_sample_clip(root: Path) -> list[str]:
    """The demo's clip in the DAVIS layout under `root`: JPEGImages/sample/*.png with
    Annotations/sample/*.png (ids 1 disc, 2 rectangle, 3 triangle); returns the video names."""
    frames_dir, masks_dir = root / "JPEGImages" / CLIP_NAME, root / "Annotations" / CLIP_NAME
    frames_dir.mkdir(parents=True)
    masks_dir.mkdir(parents=True)
    for frame_idx, frame in enumerate(render_sample_clip()):
        frame.save(frames_dir / f"{frame_idx:05d}.png")
        masks = render_sample_frame_masks(frame_idx)  # (3, height, width), disjoint
        labels = (masks * np.arange(1, len(masks) + 1)[:, None, None]).sum(0)
        save_label_png(labels, masks_dir / f"{frame_idx:05d}.png")
    return [CLIP_NAME]


def write_held_out_clips(root: Path) -> list[str]:
    """The held-out clips in the DAVIS layout under `root` (ids 1, 2, ... in drawing order, the
    lowest id on top where the ground truth of two objects would overlap: they do not); returns
    the video names."""
    names = []
    for clip_idx in range(HELD_OUT_CLIPS):
        name = f"held_out_{clip_idx}"
        rng = np.random.default_rng([HELD_OUT_SEED, clip_idx])
        frames, masks = render_shapes_clip(rng, HELD_OUT_SIZE, HELD_OUT_FRAMES, **CLIP_MOTION)
        (root / "JPEGImages" / name).mkdir(parents=True)
        (root / "Annotations" / name).mkdir(parents=True)
        for frame_idx, (frame, frame_masks) in enumerate(zip(frames, masks, strict=True)):
            frame.save(root / "JPEGImages" / name / f"{frame_idx:05d}.png")
            labels = (frame_masks * np.arange(1, len(frame_masks) + 1)[:, None, None]).sum(0)
            save_label_png(labels, root / "Annotations" / name / f"{frame_idx:05d}.png")
        names.append(name)
    return names


def ground_truth_boxes(labels: np.ndarray, frame_idx: int) -> list[Prompt]:
    """The bounding box of every object of a (height, width) id map, as prompts on `frame_idx`."""
    prompts = []
    for obj_id in sorted(set(np.unique(labels).tolist()) - {0}):
        ys, xs = np.nonzero(labels == obj_id)
        prompts.append(Prompt(obj_id, frame_idx, box=(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))))
    return prompts


def per_frame_box_j_and_f(image_model: EdgeTamModel, root: Path, videos: list[str], out: Path) -> tuple[float, float, float]:
    """(J&F, J, F) of the image model answering every frame's ground-truth boxes, no tracking."""
    processor = processor_for(EdgeTamProcessor, image_model)
    for name in videos:
        (out / name).mkdir(parents=True)
        for path in sorted((root / "Annotations" / name).glob("*.png")):
            frame = Image.open(root / "JPEGImages" / name / path.name).convert("RGB")
            prompts = ground_truth_boxes(read_label_png(path), 0)
            results = segment_image(image_model, processor, frame, prompts) if prompts else []  # every object gone
            masks = torch.from_numpy(np.stack([result.mask_logits > 0 for result in results])) if results else torch.zeros(0, frame.height, frame.width, dtype=torch.bool)
            save_label_png(lowest_id_on_top(masks, [prompt.obj_id for prompt in prompts]), out / name / path.name)
    return evaluate_folders(root / "Annotations", out, videos, workers=1).mean()


def clip_j_and_f(video_model: EdgeTamVideoModel, root: Path, videos: list[str], out: Path) -> tuple[float, float, float]:
    """Tracks every clip into `out` and returns (J&F, J, F) in percent, means over objects."""
    processor = processor_for(EdgeTamVideoProcessor, video_model)
    for name in videos:
        job = VideoJob(name, root / "JPEGImages" / name, 0, prompts=ground_truth_boxes(read_label_png(root / "Annotations" / name / "00000.png"), 0))
        (out / name).mkdir(parents=True)
        with torch.no_grad(), tqdm(disable=True) as progress:
            annotate_video(video_model, processor, job, out / name, progress)
    return evaluate_folders(root / "Annotations", out, videos, workers=1).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL, help="a folder of the tiny image model")
    parser.add_argument(
        "--video-model", type=Path, default=BUNDLED_VIDEO_MODEL, help="a folder written by scripts/train_tiny_video.py"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    image_model = EdgeTamModel.from_pretrained(str(args.model)).eval()
    video_models = {
        "trained image parts, trained memory": lambda: trained_video_model(args.video_model, image_model),
        "trained image parts, random memory": lambda: video_model_from_image_model(image_model, random_image_parts=False),
        "all weights random": lambda: video_model_from_image_model(image_model, random_image_parts=True),
    }
    clip_sets = {"held-out clips": write_held_out_clips, "demo clip": write_sample_clip}
    with tempfile.TemporaryDirectory() as scratch:
        for set_idx, (clip_set, write) in enumerate(clip_sets.items()):
            root = Path(scratch) / str(set_idx)
            videos = write(root / "clips")
            for run_idx, (label, build) in enumerate(video_models.items()):
                jf, j, f = clip_j_and_f(build(), root / "clips", videos, root / f"tracks_{run_idx}")
                logger.info("%s, %s: J&F %.1f  J %.1f  F %.1f", clip_set, label, jf, j, f)
            with torch.no_grad():
                jf, j, f = per_frame_box_j_and_f(image_model, root / "clips", videos, root / "per_frame")
            logger.info("%s, image model alone, ground-truth box on every frame: J&F %.1f  J %.1f  F %.1f", clip_set, jf, j, f)


if __name__ == "__main__":
    main()
