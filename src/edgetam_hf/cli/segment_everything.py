"""`edgetam-hf segment-everything`: every object of an image (the masks of transformers'
mask-generation pipeline with the original SAM2AutomaticMaskGenerator's numerics, computed by
`edgetam_hf.everything.generate_masks`, which upsamples only the candidates it keeps)."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from .drawing import distinct_colors, overlay_labels
from .media import read_image
from .models import add_model_arguments, computing_in, device_from, image_processor_for, load_model, model_source
from .output_folder import prepare_output_folder
from .progress import progress


def add_arguments(everything) -> None:
    everything.description = (
        "Prompt the model with a grid of points and keep the confident, stable, distinct masks "
        "(the masks of transformers' mask-generation pipeline with the original SAM2AutomaticMaskGenerator's "
        "numerics, upsampling only the candidates whose predicted IoU passes). "
        "Writes masks/NNN.png (best predicted IoU first), overlay.png and scores.json."
    )
    everything.add_argument("image", help="a JPEG / PNG image")
    add_model_arguments(everything)
    everything.add_argument("--points-per-side", type=int, default=32, help="grid of N x N points (default 32)")
    everything.add_argument("--points-per-batch", type=int, default=64, help="points per model call (default 64)")
    everything.add_argument("--pred-iou-thresh", type=float, default=0.8, help="keep masks above this predicted IoU (default 0.8)")
    everything.add_argument(
        "--stability-score-thresh", type=float, default=0.95, help="keep masks at least this stable (default 0.95)"
    )
    everything.add_argument("--crop-n-layers", type=int, default=0, help="also run on 4^k crops, k = 1..N (default 0)")
    everything.add_argument("--out", default="out/segment-everything", help="output folder")
    everything.set_defaults(run=run_segment_everything)


def run_segment_everything(args) -> int:
    from ..everything import generate_masks, num_decoder_batches
    from ..modeling import EdgeTamModel

    args.model = model_source(args.model)
    image = read_image(args.image)
    if args.points_per_side < 1 or args.points_per_batch < 1:
        raise ValueError("--points-per-side and --points-per-batch must be at least 1")
    device = device_from(args.device)
    model = load_model(EdgeTamModel, args.model, device, args.image_size)
    total = num_decoder_batches(args.points_per_side, args.points_per_batch, args.crop_n_layers)
    with computing_in(args.dtype, device), progress(total=total, desc="decoding points", unit="batch") as bar:
        outputs = generate_masks(
            model,
            image_processor_for(model),
            image,
            points_per_side=args.points_per_side,
            points_per_batch=args.points_per_batch,
            pred_iou_thresh=args.pred_iou_thresh,
            stability_score_thresh=args.stability_score_thresh,
            crops_n_layers=args.crop_n_layers,
            on_batch=bar.update,
        )
    _write_everything(Path(args.out), image, outputs, {"image": args.image, "model": args.model})
    return 0


def _write_everything(out_dir: Path, image: Image.Image, outputs: dict, about: dict) -> None:
    masks = [mask.numpy().astype(bool) for mask in outputs["masks"]]
    (prepare_output_folder(out_dir) / "masks").mkdir(exist_ok=True)
    entries = []
    for index, (mask, score, box) in enumerate(zip(masks, outputs["scores"].tolist(), outputs["bounding_boxes"].tolist())):
        name = f"masks/{index:03d}.png"
        Image.fromarray(mask.astype(np.uint8) * 255).save(out_dir / name)
        entries.append({"mask": name, "predicted_iou": score, "area": int(mask.sum()), "box": box})
    # Largest first, so that smaller masks are drawn over the larger ones they lie on.
    labels = np.zeros(image.size[::-1], dtype=np.int32)
    for index in sorted(range(len(masks)), key=lambda i: -entries[i]["area"]):
        labels[masks[index]] = index + 1
    colors = dict(zip(range(1, len(masks) + 1), distinct_colors(len(masks))))
    overlay_path = out_dir / "overlay.png"
    overlay_labels(image, labels, colors).save(overlay_path)
    (out_dir / "scores.json").write_text(json.dumps({**about, "size": list(image.size), "masks": entries}, indent=2))
    print(f"{len(masks)} masks; wrote {overlay_path}, masks/NNN.png and scores.json in {out_dir}")
