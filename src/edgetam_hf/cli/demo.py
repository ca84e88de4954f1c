"""`edgetam-hf demo` (the README's `make demo`): the bundled sample image segmented from two
boxes, and the bundled sample clip tracked from a box and a click, with a checkpoint when one is
given or found. Without one, the image is segmented by the tiny model bundled with the package
(trained by scripts/train_tiny_model.py on rendered shapes only), the clip is tracked by the tiny
video model bundled beside it (scripts/train_tiny_video.py, rendered moving shapes only), and a
banner says exactly that, with their held-out figures."""

import json
from pathlib import Path

from .media import Video
from .models import DEFAULT_MODEL, add_model_arguments, computing_in, device_from, find_checkpoint, load_model, processor_for
from .prompts import POSITIVE, ObjectPrompt
from .segment import segment_image, write_image_results
from .track import track_video

# The tiny image model trained on rendered shapes (package data, see scripts/train_tiny_model.py).
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent / "tiny_model"
BUNDLED_MODEL_NAME = "bundled tiny EdgeTAM trained on rendered shapes"
# Its video model: the same trunk, memory parts trained on rendered moving shapes (scripts/train_tiny_video.py).
BUNDLED_VIDEO_MODEL_DIR = BUNDLED_MODEL_DIR.parent / "tiny_video_model"
BUNDLED_VIDEO_MODEL_NAME = "bundled tiny EdgeTAM video model trained on rendered moving shapes"
SAMPLE_CLIP_FPS = 8.0


def add_arguments(demo) -> None:
    demo.description = (
        "Segment the bundled sample image from two boxes and track a disc and a rectangle "
        "through the bundled 16-frame clip. The model comes from --model, else $EDGETAM_CHECKPOINT, "
        f"./edgetam.pt, ./checkpoints/edgetam.pt or {DEFAULT_MODEL} in the Hugging Face cache; with none of "
        "them, the tiny models bundled with the package (trained on rendered shapes only)."
    )
    add_model_arguments(demo, model_help="a converted folder, Meta's edgetam.pt or a Hub id (default: found, see above)")
    demo.add_argument("--checkpoint", dest="model", help="the same as --model")
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    demo.set_defaults(run=run_demo, model=None)


def run_demo(args) -> int:
    from ..modeling import EdgeTamModel
    from ..modeling_video import EdgeTamVideoModel

    device = device_from(args.device)
    source = args.model or find_checkpoint()
    if source is None:
        print(no_checkpoint_banner())
        image_model = load_model(EdgeTamModel, str(BUNDLED_MODEL_DIR), device, args.image_size)
        video_model = load_model(EdgeTamVideoModel, str(BUNDLED_VIDEO_MODEL_DIR), device, args.image_size)
        image_about = {"model": BUNDLED_MODEL_NAME, "random_weights": False}
        video_about = {"model": BUNDLED_VIDEO_MODEL_NAME, "random_weights": False}
    else:
        print(f"model: {source}")
        image_model = load_model(EdgeTamModel, source, device, args.image_size)
        video_model = load_model(EdgeTamVideoModel, source, device, args.image_size)
        image_about = video_about = {"model": source, "random_weights": False}
    out_dir = Path(args.out)

    with computing_in(args.dtype, device):
        image_overlay = _segment_sample_image(image_model, out_dir / "image", image_about)
        video_overlay = _track_sample_clip(video_model, out_dir / "video", video_about)
    print(f"\nopen {image_overlay} and {video_overlay} to see the result")
    if source is None:
        print("(the bundled tiny models, trained on rendered shapes only; see the note above)")
    return 0


def no_checkpoint_banner() -> str:
    """What the demo runs without a checkpoint, with the bundled model's own training figures."""
    report = json.loads((BUNDLED_MODEL_DIR / "training_report.json").read_text())
    figures = report["held_out_iou"]
    video_report = json.loads((BUNDLED_VIDEO_MODEL_DIR / "training_report.json").read_text())
    return (
        "=" * 78 + "\n"
        "NOTE: no checkpoint given or found.\n"
        f"IMAGE: a TINY EdgeTAM (EdgeTAM's architecture at reduced widths, {report['parameters'] / 1e6:.2f}M parameters,\n"
        f"{report['image_size']} px input) bundled with this package, trained by us from random weights for\n"
        f"{report['steps']} steps on rendered flat shapes ONLY (scripts/train_tiny_model.py). On held-out rendered\n"
        f"scenes its IoU is {figures['one_click']:.2f} from one click, {figures['box']:.2f} from a box (random weights\n"
        f"{report['held_out_one_click_iou_random_weights']:.2f}). It segments the sample image; on real photos it is useless.\n"
        f"VIDEO: the TINY video model bundled beside it: that trunk, memory parts and decoder trained by us for {video_report['best']['step']}\n"
        "steps on rendered moving shapes ONLY (scripts/train_tiny_video.py). On held-out rendered clips\n"
        f"(shapes crossing, turning, leaving and coming back) it tracks at J&F {video_report['best']['j_and_f']:.1f} from frame-0 boxes\n"
        f"(random memory weights {video_report['random_memory_j_and_f']:.1f}; the image model given the true box on every\n"
        f"frame {video_report['per_frame_box_ceiling']:.1f}). It tracks the sample clip; on real videos it is useless.\n"
        "Real photos and videos need Meta's checkpoint: edgetam-hf demo --model edgetam.pt,\n"
        f"a converted folder, or a Hub id ({DEFAULT_MODEL}).\n" + "=" * 78
    )


def _segment_sample_image(model, out_dir: Path, about: dict) -> Path:
    from ..processing import EdgeTamProcessor
    from ..sample_media import SAMPLE_BOXES, render_sample_image

    prompts = [ObjectPrompt(obj_id, 0, box=box) for obj_id, box in enumerate(SAMPLE_BOXES, start=1)]
    image = render_sample_image()
    out_dir.mkdir(parents=True, exist_ok=True)
    image.save(out_dir / "input.png")
    results = segment_image(model, processor_for(EdgeTamProcessor, model), image, prompts)
    return write_image_results(out_dir, image, prompts, results, {"image": "sample image", **about})


def _track_sample_clip(model, out_dir: Path, about: dict) -> Path:
    from ..sample_media import SAMPLE_BOXES, SAMPLE_RECTANGLE_CLICK, render_sample_clip

    frames = render_sample_clip()
    clip = Video(frames, [f"{index:05d}" for index in range(len(frames))], fps=SAMPLE_CLIP_FPS)
    prompts = [
        ObjectPrompt(1, 0, box=SAMPLE_BOXES[0]),
        ObjectPrompt(2, 0, points=[SAMPLE_RECTANGLE_CLICK], labels=[POSITIVE]),
    ]
    return track_video(model, clip, prompts, out_dir, None, False, {"video": "sample clip", **about})

