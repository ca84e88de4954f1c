"""`edgetam-hf segment`: objects of one image from clicks and boxes."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .drawing import draw_prompts, object_color, overlay_labels
from .media import label_map, read_image, save_label_png
from .models import add_model_arguments, computing_in, device_from, load_model, model_source, processor_for
from .output_folder import prepare_output_folder
from .prompts import ObjectPrompt, add_prompt_arguments, check_inside, group_prompts


@dataclass
class ObjectMask:
    obj_id: int
    mask_logits: np.ndarray  # (height, width) float32 at image resolution
    iou_scores: list[float]  # predicted IoU of each candidate mask
    chosen: int  # the candidate kept: the best predicted IoU
    object_score_logit: float  # > 0: the object is judged present


def add_arguments(segment) -> None:
    segment.description = (
        "Segment objects of an image. Writes mask_<ID>.png (0 / 255), masks.png (indexed: pixel value = object "
        "id), overlay.png and scores.json. An object prompted by one click alone gets SAM's three candidate "
        "masks and keeps the one with the best predicted IoU."
    )
    segment.add_argument("image", help="a JPEG / PNG image")
    add_prompt_arguments(segment, with_frames=False)
    add_model_arguments(segment)
    segment.add_argument("--out", default="out/segment", help="output folder (default out/segment)")
    segment.set_defaults(run=run_segment)


def run_segment(args) -> int:
    from ..onnx.manifest import is_export_folder

    args.model = model_source(args.model)
    image = read_image(args.image)
    prompts = group_prompts(args.prompt_sequence)
    check_inside(prompts, *image.size)
    if is_export_folder(args.model):  # an `edgetam-hf export` folder runs on onnxruntime
        from .onnx_segment import segment_image_onnx

        results = segment_image_onnx(args.model, image, prompts)
    else:  # torch and transformers are imported here only: an export folder needs neither
        from ..modeling import EdgeTamModel
        from ..processing import EdgeTamProcessor

        device = device_from(args.device)
        model = load_model(EdgeTamModel, args.model, device, args.image_size)
        with computing_in(args.dtype, device):
            results = segment_image(model, processor_for(EdgeTamProcessor, model), image, prompts)
    write_image_results(Path(args.out), image, prompts, results, {"image": args.image, "model": args.model})
    return 0


def segment_image(model, processor, image: Image.Image, prompts: list[ObjectPrompt]) -> list[ObjectMask]:
    """Encodes the image once, then decodes each object's prompts."""
    embeddings = model.get_image_embeddings(processor(images=image)["pixel_values"].to(model.device))
    return [_segment_object(model, processor, embeddings, prompt, image.size) for prompt in prompts]


def _segment_object(model, processor, embeddings, prompt: ObjectPrompt, size: tuple[int, int]) -> ObjectMask:
    width, height = size
    prompt_inputs = {}
    if prompt.points:
        prompt_inputs.update(input_points=[[prompt.points]], input_labels=[[prompt.labels]])
    if prompt.box is not None:
        prompt_inputs["input_boxes"] = [[list(prompt.box)]]
    inputs = processor(original_sizes=[[height, width]], **prompt_inputs)
    prompt_tensors = {name: inputs[name].to(model.device) for name in prompt_inputs}
    # One click alone is ambiguous (part or whole?): take SAM's three candidates, keep the best.
    multimask = prompt.box is None and len(prompt.points) == 1
    outputs = model(image_embeddings=embeddings, multimask_output=multimask, **prompt_tensors)
    iou_scores = outputs.iou_scores[0, 0].float()
    chosen = int(iou_scores.argmax())
    low_res = outputs.pred_masks[:, :, chosen : chosen + 1].float().cpu()  # (1, 1, 1, 256, 256)
    logits = processor.post_process_masks(low_res, inputs["original_sizes"], binarize=False)[0][0, 0].numpy()
    return ObjectMask(prompt.obj_id, logits, iou_scores.tolist(), chosen, float(outputs.object_score_logits[0, 0, 0]))


def write_image_results(
    out_dir: Path, image: Image.Image, prompts: list[ObjectPrompt], results: list[ObjectMask], about: dict
) -> Path:
    """mask_<id>.png, masks.png, overlay.png and scores.json; returns the overlay's path."""
    prepare_output_folder(out_dir)
    objects = []
    for result in results:
        mask = result.mask_logits > 0
        Image.fromarray(mask.astype(np.uint8) * 255).save(out_dir / f"mask_{result.obj_id}.png")
        objects.append({
            "object": result.obj_id,
            "mask": f"mask_{result.obj_id}.png",
            "area": int(mask.sum()),
            "iou_scores": result.iou_scores,
            "chosen_mask": result.chosen,
            "object_score_logit": result.object_score_logit,
        })
    obj_ids = [result.obj_id for result in results]
    labels = label_map(np.stack([result.mask_logits for result in results]), obj_ids)
    save_label_png(labels, out_dir / "masks.png")
    overlay = overlay_labels(image, labels, {obj_id: object_color(obj_id) for obj_id in obj_ids})
    overlay_path = out_dir / "overlay.png"
    draw_prompts(overlay, prompts).save(overlay_path)
    scores = {**about, "size": list(image.size), "prompts": [p.as_json() for p in prompts], "objects": objects}
    (out_dir / "scores.json").write_text(json.dumps(scores, indent=2))
    for entry in objects:
        print(f"object {entry['object']}: {entry['area']} pixels, predicted IoU {max(entry['iou_scores']):.3f}, "
              f"object score {entry['object_score_logit']:+.2f}")
    print(f"wrote {overlay_path}, masks.png, mask_<id>.png and scores.json in {out_dir}")
    return overlay_path
