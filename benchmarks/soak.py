"""`python -m benchmarks.soak`: a long stream into one session, ours and transformers' streaming
session, with resident memory and per-frame time sampled every `--every` frames; printed as a
table and drawn as a PNG (with PIL: matplotlib is not a dependency).

The stream is the benchmark clip (benchmarks/media.py: the shared bedroom clip, or the rendered
sample scene) played forth and back, one object clicked on the first frame, each frame put
through the processor and `model(session, frame=...)` as a live source would be. Flat means: the
resident memory stays within a few percent of its value at the first sample, and so does the
time per frame. The implementations run one after the other in this process (weights shared, as
in `benchmarks.run`); each is measured from its own first sample.

    python -m benchmarks.soak                     # 10,000 frames, the full-size model
    python -m benchmarks.soak --tiny --frames 300 # a quick check that it works
"""

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import torch

from . import environment

PLOT_SIZE = (900, 640)  # (width, height) of the PNG
_COLORS = {"ours": (40, 110, 220), "transformers": (230, 120, 30)}
_CLIP_FRAMES = 48  # the clip written and looped


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=10_000, help="frames streamed per implementation (default 10,000)")
    parser.add_argument("--every", type=int, default=100, help="sample memory and time every N frames (default 100)")
    parser.add_argument("--tiny", action="store_true", help="the tiny config of benchmarks.models (default: full size)")
    parser.add_argument("--implementations", default="ours,transformers", help="comma-separated (default ours,transformers)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:index]")
    parser.add_argument("--out", type=Path, default=Path("out/soak"), help="folder for soak.png and soak.md (default out/soak)")
    options = parser.parse_args(argv)
    if options.frames < options.every or options.every < 1:
        parser.error("--frames must be at least --every, and --every at least 1")
    options.device = torch.device(options.device)
    options.dtype = torch.float32
    options.weights = None
    return options


def soak(implementation: str, lineup, clip, options) -> list[dict]:
    """Streams `options.frames` frames into a fresh session; one sample per `options.every` frames:
    frame count, resident MiB (process-wide, or the device's allocated memory) and mean ms per frame."""
    from .media import decode_frame, ping_pong_indices
    from .memory import held_memory_mib

    model, processor = lineup.models[implementation], lineup.processors[implementation]
    frames = [decode_frame(path) for path in clip.frame_paths]
    gc.collect()
    session = processor.init_video_session(inference_device=options.device, dtype=options.dtype)
    samples, window_started = [], time.perf_counter()
    for step, frame_index in enumerate(ping_pong_indices(len(frames), options.frames)):
        pixel_values = processor(images=frames[frame_index], return_tensors="pt")["pixel_values"][0]
        if step == 0:
            processor.add_inputs_to_inference_session(
                inference_session=session, frame_idx=0, obj_ids=[1], input_points=[[[list(clip.clicks[0])]]],
                input_labels=[[[1]]], original_size=clip.size,
            )
        with torch.inference_mode():
            model(inference_session=session, frame=pixel_values.to(options.device))
        if (step + 1) % options.every == 0:
            now = time.perf_counter()
            samples.append({
                "frames": step + 1,
                "memory_mib": held_memory_mib(options.device),
                "ms_per_frame": 1000 * (now - window_started) / options.every,
            })
            window_started = now
            print(f"  {implementation}: {_row(samples[-1], samples[0])}", flush=True)
    del session
    gc.collect()
    return samples


def _row(sample: dict, first: dict) -> str:
    memory, first_memory = sample["memory_mib"], first["memory_mib"]
    growth = "" if memory is None or not first_memory else f" ({100 * (memory / first_memory - 1):+.1f}%)"
    held = "n/a" if memory is None else f"{memory:.0f} MiB"
    return f"{sample['frames']:>7} frames  {held}{growth}  {sample['ms_per_frame']:.1f} ms/frame"


def table(results: dict[str, list[dict]]) -> str:
    """A markdown table: one row per sample, memory (and its change since the first sample) and
    time per frame for each implementation."""
    names = list(results)
    lines = ["| frames | " + " | ".join(f"{name} MiB | {name} ms/frame" for name in names) + " |"]
    lines.append("|---:|" + "---:|---:|" * len(names))
    for index in range(max(len(samples) for samples in results.values())):
        cells = []
        for name in names:
            samples = results[name]
            if index >= len(samples):
                cells += ["", ""]
                continue
            sample, first = samples[index], samples[0]
            memory = sample["memory_mib"]
            growth = f" ({100 * (memory / first['memory_mib'] - 1):+.1f}%)" if memory and first["memory_mib"] else ""
            cells += ["n/a" if memory is None else f"{memory:.0f}{growth}", f"{sample['ms_per_frame']:.1f}"]
        frames = next(samples[index]["frames"] for samples in results.values() if index < len(samples))
        lines.append(f"| {frames} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw_plot(results: dict[str, list[dict]], path: Path, title: str) -> None:
    """Two panels, memory and time per frame against frames streamed, one line per implementation."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", PLOT_SIZE, "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), title, fill="black")
    width, height = PLOT_SIZE
    panels = [("resident memory (MiB)", "memory_mib", 30), ("time per frame (ms)", "ms_per_frame", 30 + (height - 30) // 2)]
    panel_height = (height - 30) // 2 - 40
    max_frames = max(sample["frames"] for samples in results.values() for sample in samples)
    for label, key, top in panels:
        values = [s[key] for samples in results.values() for s in samples if s[key] is not None]
        if not values:
            continue
        low, high = min(values), max(values)
        low, high = (low - 1, high + 1) if high - low < 1e-9 else (low - 0.05 * (high - low), high + 0.05 * (high - low))
        left, right, bottom = 70, width - 20, top + 10 + panel_height
        draw.rectangle((left, top + 10, right, bottom), outline="black")
        draw.text((left, top - 4), label, fill="black")
        for fraction in (0.0, 0.5, 1.0):
            value = low + fraction * (high - low)
            y = bottom - fraction * panel_height
            draw.text((5, y - 6), f"{value:.0f}" if high - low > 10 else f"{value:.2f}", fill="black")
            draw.line((left - 4, y, left, y), fill="black")
        draw.text((right - 110, bottom + 4), f"frames (max {max_frames})", fill="black")

        def point(sample, left=left, right=right, bottom=bottom, low=low, high=high, key=key):
            x = left + (right - left) * sample["frames"] / max_frames
            return x, bottom - panel_height * (sample[key] - low) / (high - low)

        for index, (name, samples) in enumerate(results.items()):
            color = _COLORS.get(name, (80, 80, 80))
            line = [point(s) for s in samples if s[key] is not None]
            if len(line) > 1:
                draw.line(line, fill=color, width=2)
            for x, y in line:
                draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=color)
            draw.text((left + 10 + 120 * index, top + 14), name, fill=color)
    image.save(path)


def main(argv=None) -> int:
    options = parse_arguments(argv)
    environment.set_threads(options.threads)
    environment.install_torchvision_shim()  # before anything imports transformers
    from .media import write_clip
    from .models import OURS, TRANSFORMERS, build_lineup

    wanted = [name.strip() for name in options.implementations.split(",") if name.strip()]
    transformers = None
    if TRANSFORMERS in wanted:
        transformers, why = environment.import_transformers_edgetam()
        if transformers is None:
            print(f"transformers left out: {why}", file=sys.stderr)
    lineup = build_lineup(True, options, transformers, None)
    names = [name for name in wanted if name in lineup.models and name in (OURS, TRANSFORMERS)]
    load_before = environment.load_average()
    model_kind = "tiny" if options.tiny else "full-size"
    print(f"soak: {options.frames} frames, {model_kind} model, {options.device}, {torch.get_num_threads()} thread(s); "
          f"weights: {lineup.weights}; load average before: {load_before}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="edgetam-soak-clip-") as folder:
        clip = write_clip(Path(folder), _CLIP_FRAMES)
        print(f"clip: {clip.source}, {_CLIP_FRAMES} frames looped forth and back", flush=True)
        for name in names:
            results[name] = soak(name, lineup, clip, options)
    load_after = environment.load_average()
    options.out.mkdir(parents=True, exist_ok=True)
    title = f"{options.frames}-frame stream, {model_kind} model, {options.device}; load {load_before} -> {load_after}"
    report = f"# Soak: {title}\n\nclip: {clip.source}\n\n{table(results)}\n"
    (options.out / "soak.md").write_text(report)
    draw_plot(results, options.out / "soak.png", title)
    print("\n" + table(results))
    print(f"\nload average after: {load_after}; wrote {options.out / 'soak.md'} and {options.out / 'soak.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
