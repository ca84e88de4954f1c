"""`edgetam-hf demo` (the README's `make demo`): the bundled sample image segmented from two
boxes, and the bundled sample clip tracked from a box and a click, with a checkpoint when one is
given or found. Without one, the image is segmented by the tiny model bundled with the package
(trained by scripts/train_tiny_model.py on rendered shapes only), the clip is tracked with
deterministic random weights, and a banner says exactly that."""

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .media import Video
from .models import DEFAULT_MODEL, add_model_arguments, computing_in, device_from, find_checkpoint, load_model, processor_for, quiet_transformers
from .prompts import POSITIVE, ObjectPrompt
from .segment import segment_image, write_image_results
from .track import track_video

if TYPE_CHECKING:
    import torch

# The tiny image model trained on rendered shapes (package data, see scripts/train_tiny_model.py).
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent / "tiny_model"
BUNDLED_MODEL_NAME = "bundled tiny EdgeTAM trained on rendered shapes"
SAMPLE_CLIP_FPS = 8.0


def add_arguments(demo) -> None:
    demo.description = (
        "Segment the bundled sample image from two boxes and track a disc and a rectangle "
        "through the bundled 16-frame clip. The model comes from --model, else $EDGETAM_CHECKPOINT, "
        f"./edgetam.pt, ./checkpoints/edgetam.pt or {DEFAULT_MODEL} in the Hugging Face cache; with none of "
        "them, from deterministic random weights (the masks are then meaningless)."
    )
    add_model_arguments(demo, model_help="a converted folder, Meta's edgetam.pt or a Hub id (default: found, see above)")
    demo.add_argument("--checkpoint", dest="model", help="the same as --model")
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    demo.set_defaults(run=run_demo, model=None)


def run_demo(args) -> int:
    from ..configuration import EdgeTamVideoConfig
    from ..modeling import EdgeTamModel
    from ..modeling_video import EdgeTamVideoModel

    device = device_from(args.device)
    source = args.model or find_checkpoint()
    if source is None:
        print(no_checkpoint_banner())
        image_model = load_model(EdgeTamModel, str(BUNDLED_MODEL_DIR), device, args.image_size)
        video_model = _random_model(EdgeTamVideoModel, EdgeTamVideoConfig(), device)
        image_about = {"model": BUNDLED_MODEL_NAME, "random_weights": False}
        video_about = {"model": "random weights (torch seed 0)", "random_weights": True}
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
        print("(image: the bundled shapes-only tiny model; video: random weights, meaningless; see the note above)")
    return 0


def no_checkpoint_banner() -> str:
    """What the demo runs without a checkpoint, with the bundled model's own training figures."""
    report = json.loads((BUNDLED_MODEL_DIR / "training_report.json").read_text())
    figures = report["held_out_iou"]
    return (
        "=" * 78 + "\n"
        "NOTE: no checkpoint given or found.\n"
        f"IMAGE: a TINY EdgeTAM (EdgeTAM's architecture at reduced widths, {report['parameters'] / 1e6:.2f}M parameters,\n"
        f"{report['image_size']} px input) bundled with this package, trained by us from random weights for\n"
        f"{report['steps']} steps on rendered flat shapes ONLY (scripts/train_tiny_model.py). On held-out rendered\n"
        f"scenes its IoU is {figures['one_click']:.2f} from one click, {figures['box']:.2f} from a box (random weights\n"
        f"{report['held_out_one_click_iou_random_weights']:.2f}). It segments the sample image; on real photos it is useless.\n"
        "VIDEO: deterministic RANDOM weights (the tiny model has no trained memory), so the\n"
        "tracked masks are meaningless; the files only show that tracking runs end to end.\n"
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


def _random_model(model_class, config, device: "torch.device"):
    import torch  # here: `demo --help` imports no torch

    torch.manual_seed(0)
    with quiet_transformers():
        model = model_class(config)
    return model.to(device).eval()
