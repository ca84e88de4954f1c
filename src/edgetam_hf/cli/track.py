"""`edgetam-hf track`: objects prompted on some frames, tracked through a video or a live stream.

Writes, as each frame is computed, one indexed PNG per tracked frame in the DAVIS layout
(`<frame>.png`, pixel value = object id) and a line of `scores.jsonl` (every object's score and
area on that frame, flushed at once); then `scores.json` (everything together) and an overlay video
(.mp4 with PyAV, else .gif). A video file or frame folder is read frame by frame by a bounded
session, so no run holds the whole video; tracking runs forward from the first prompted frame, or
with `--reverse` backward from the last one, as SAM 2's demos do. `--stream` tracks a live source
forward as its frames arrive, writing the overlay as it goes. The files are written into a hidden
folder inside `--out` and moved into `--out` when the run ends (output_folder.py). Ctrl-C stops a
run cleanly: what was written is moved in, and scores.json and the overlay cover the frames
tracked so far; a run killed outright leaves `--out` as the run before it left it.
"""

import gc
import json
import logging
import time
from pathlib import Path

import numpy as np

from ..latency import LatencyRecorder
from .drawing import draw_prompts, object_color, overlay_labels
from .media import LiveSource, OverlayVideoWriter, label_map, open_frames, save_label_png
from .models import add_model_arguments, computing_in, device_from, load_model, model_source, processor_for
from .output_folder import fresh_run_folder, publish_run
from .progress import progress
from .prompts import ObjectPrompt, add_prompt_arguments, check_inside, group_prompts

logger = logging.getLogger(__name__)
FRAME_SCORES_FILE = "scores.jsonl"
INTERRUPTED = 130  # the shell's exit status for Ctrl-C


def add_arguments(track) -> None:
    track.description = (
        "Track objects through a video. SOURCE is an .mp4 (needs PyAV: pip install "
        '"edgetam-hf[video]") or a folder of JPEG / PNG frames; with --stream also a camera (/dev/video0), '
        "an RTSP / HTTP URL, or - for raw RGB24 frames on stdin (width x height x 3 bytes each, row by "
        "row, with --size WxH; e.g. ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24 - | edgetam-hf track - "
        "--stream --size 640x480 ...). Writes <frame>.png per tracked frame (indexed, pixel value = object "
        "id, DAVIS palette) and a line of scores.jsonl per frame as they are computed, then scores.json "
        "and overlay.mp4 (overlay.gif without PyAV), into a hidden folder in --out moved in at the end. "
        "Ctrl-C stops and keeps what was written. "
        "Example: --frame 0 --object 1 --point 210,350 --object 2 --box 50,40,300,260"
    )
    track.add_argument("video", metavar="SOURCE", help="an .mp4 file or a folder of frames; with --stream also a device, URL or -")
    add_prompt_arguments(track, with_frames=True)
    add_model_arguments(track)
    track.add_argument("--max-frames", type=int, help="track at most N frames, the prompted one included")
    track.add_argument("--reverse", action="store_true", help="track backward from the last prompted frame")
    track.add_argument("--stream", action="store_true", help="track SOURCE forward as its frames arrive (a live source)")
    track.add_argument("--size", type=_size, metavar="WxH", help="the frame size of raw frames on stdin (SOURCE -)")
    track.add_argument("--out", default="out/track", help="output folder (default out/track)")
    track.set_defaults(run=run_track)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size: expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if width < 1 or height < 1:
        raise ValueError(f"--size: expected a positive width and height, got {text!r}")
    return width, height


def run_track(args) -> int:
    from ..onnx.manifest import is_export_folder

    args.model = model_source(args.model)
    prompts = group_prompts(args.prompt_sequence)
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames: expected 1 or more, got {args.max_frames}")
    if args.stream and args.reverse:
        raise ValueError("--reverse: a stream is tracked forward as it arrives; track a file for --reverse")
    if not args.stream and (args.video == "-" or args.size is not None):
        raise ValueError("SOURCE - and --size are for --stream (raw frames on stdin)")
    source = LiveSource(args.video, args.size) if args.stream else open_frames(args.video, "VIDEO")
    try:
        if not args.stream:
            check_prompt_frames(prompts, len(source))
            check_inside(prompts, *source.size, what="video frame")
        about = {"video": args.video, "model": args.model}
        if is_export_folder(args.model):  # an `edgetam-hf export` folder of a video model runs on onnxruntime
            if args.image_size is not None:
                raise ValueError("--image-size: an export folder runs at the size it was exported at (export --image-size)")
            from .onnx_track import track_stream_onnx, track_video_onnx

            if args.stream:
                track_stream_onnx(args.model, source, prompts, Path(args.out), args.max_frames, about)
            else:
                track_video_onnx(args.model, source, prompts, Path(args.out), args.max_frames, args.reverse, about)
            return 0
        from ..modeling_video import EdgeTamVideoModel  # torch and transformers: not for an export folder

        device = device_from(args.device)
        model = load_model(EdgeTamVideoModel, args.model, device, args.image_size)
        with computing_in(args.dtype, device):
            if args.stream:
                track_stream(model, source, prompts, Path(args.out), args.max_frames, about)
            else:
                track_video(model, source, prompts, Path(args.out), args.max_frames, args.reverse, about)
    except KeyboardInterrupt:
        return INTERRUPTED  # the outputs were closed on the way out
    finally:
        source.close()
    return 0


def check_prompt_frames(prompts: list[ObjectPrompt], num_frames: int) -> None:
    for prompt in prompts:
        if prompt.frame_idx >= num_frames:
            raise ValueError(f"--frame {prompt.frame_idx}: the video has {num_frames} frames (0 to {num_frames - 1})")


class TrackWriter:
    """The outputs of a run, written as frames are computed: each frame's mask PNG and its line
    of scores.jsonl (flushed), and at the end scores.json, read back from the lines. They are
    written into `out_dir`, a fresh folder inside the `--out` folder, until `publish` moves them
    into it (output_folder.py: a killed run's frames never mix with the next run's)."""

    def __init__(self, out_dir: Path, about: dict, names: list[str] | None = None):
        self.final_dir = out_dir
        self.out_dir = fresh_run_folder(out_dir)
        self.about = about
        self.names = names  # per frame index the mask file's name; None: the 5-digit index
        self.num_frames = 0
        self._lines = open(self.out_dir / FRAME_SCORES_FILE, "w")
        self._lines.write(json.dumps(about) + "\n")
        self._lines.flush()

    def name(self, frame_idx: int) -> str:
        return self.names[frame_idx] if self.names is not None else f"{frame_idx:05d}"

    def add(self, processor, output, size: tuple[int, int], frame_idx: int | None = None) -> np.ndarray:
        """Writes a model output's masks and scores; returns its (height, width) label map."""
        width, height = size
        logits = processor.post_process_masks([output.pred_masks.float().cpu()], [[height, width]], binarize=False)[0]
        labels = label_map(logits[:, 0], output.object_ids)
        frame_idx = output.frame_idx if frame_idx is None else frame_idx
        self.add_labels(labels, output.object_ids, output.object_score_logits[:, 0].float().cpu().tolist(), frame_idx)
        return labels

    def add_labels(self, labels: np.ndarray, object_ids: list[int], scores: list, frame_idx: int) -> None:
        """Writes one frame's (height, width) label map and its objects' score logits."""
        save_label_png(labels, self.out_dir / f"{self.name(frame_idx)}.png")
        entry = {
            "frame": frame_idx,
            "mask": f"{self.name(frame_idx)}.png",
            "object_score_logits": {str(obj_id): score for obj_id, score in zip(object_ids, scores)},
            "areas": {str(obj_id): int((labels == obj_id).sum()) for obj_id in object_ids},
        }
        self._lines.write(json.dumps(entry) + "\n")
        self._lines.flush()
        self.num_frames += 1

    def close(self) -> None:
        """Closes scores.jsonl and writes scores.json from it (frames in time order)."""
        self._lines.close()
        with open(self.out_dir / FRAME_SCORES_FILE) as lines:
            header, *frames = (json.loads(line) for line in lines)
        frames.sort(key=lambda entry: entry["frame"])
        partial = self.out_dir / "scores.json.partial"
        partial.write_text(json.dumps({**header, "frames": frames}, indent=2))
        partial.replace(self.out_dir / "scores.json")

    def publish(self) -> None:
        """Moves the closed run's files (and whatever else was written into `out_dir`) into the `--out` folder."""
        publish_run(self.out_dir, self.final_dir)


def _prompts_json(prompts: list[ObjectPrompt]) -> dict:
    return {"objects": sorted({prompt.obj_id for prompt in prompts}), "prompts": [prompt.as_json() for prompt in prompts]}


def _add_prompts(processor, session, prompts: list[ObjectPrompt], frame_idx: int, session_frame_idx: int, size) -> None:
    for prompt in (p for p in prompts if p.frame_idx == frame_idx):
        processor.add_inputs_to_inference_session(
            session,
            frame_idx=session_frame_idx,
            obj_ids=prompt.obj_id,
            input_points=[[prompt.points]] if prompt.points else None,
            input_labels=[[prompt.labels]] if prompt.points else None,
            input_boxes=[[list(prompt.box)]] if prompt.box is not None else None,
            original_size=(size[1], size[0]),
        )


def track_video(model, video, prompts: list[ObjectPrompt], out_dir: Path, max_frames: int | None, reverse: bool, about: dict) -> Path:
    """Tracks a video file, frame folder or `Video` read frame by frame; returns the overlay's
    path. Ctrl-C closes the outputs over the frames tracked so far and is raised again."""
    from ..video_processing import EdgeTamVideoProcessor

    processor = processor_for(EdgeTamVideoProcessor, model)
    session = processor.init_video_session(video=video, inference_device=model.device, video_storage_device="cpu", bounded=True)
    for frame_idx in sorted({prompt.frame_idx for prompt in prompts}):
        _add_prompts(processor, session, prompts, frame_idx, frame_idx, video.size)
        model(session, frame_idx=frame_idx)
    start, num_frames = tracking_range(prompts, len(video), max_frames, reverse)
    outputs = model.propagate_in_video_iterator(session, start_frame_idx=start, max_frame_num_to_track=num_frames - 1, reverse=reverse)

    def write(output, writer: TrackWriter) -> int:
        writer.add(processor, output, video.size)
        return output.frame_idx

    return write_tracking(video, outputs, write, prompts, out_dir, (start, num_frames, reverse), about)


def tracking_range(prompts: list[ObjectPrompt], video_length: int, max_frames: int | None, reverse: bool) -> tuple[int, int]:
    """(first frame, number of frames) tracked: from the first prompted frame forward, or from the
    last one backward, at most `max_frames`."""
    prompted_frames = [prompt.frame_idx for prompt in prompts]
    start = max(prompted_frames) if reverse else min(prompted_frames)
    num_frames = start + 1 if reverse else video_length - start
    return start, num_frames if max_frames is None else min(num_frames, max_frames)


def write_tracking(video, outputs, write, prompts: list[ObjectPrompt], out_dir: Path, tracked_range, about: dict) -> Path:
    """Writes each tracked frame as it comes (`write(output, writer)` -> its frame index), then
    scores.json and the overlay, also when stopped early; returns the overlay's path."""
    start, num_frames, reverse = tracked_range
    direction = "reverse" if reverse else "forward"
    writer = TrackWriter(out_dir, {**about, "size": list(video.size), "fps": video.fps, "direction": direction, **_prompts_json(prompts)}, video.names)
    completed, tracked = False, set()
    try:
        for output in progress(outputs, total=num_frames, desc="tracking", unit="frame"):
            tracked.add(write(output, writer))
        completed = True
    finally:
        writer.close()
        frames = video.opened_again()
        try:
            overlay_path = out_dir / _write_overlay(writer.out_dir / "overlay", frames, tracked, writer, prompts).name
        finally:
            if frames is not video:
                frames.close()
            writer.publish()
        print(
            f"{'tracked' if completed else 'stopped after'} {len(tracked)} frame(s) of {len(writer.about['objects'])} "
            f"object(s) ({direction} from frame {start}); wrote <frame>.png masks, {overlay_path.name}, scores.jsonl "
            f"and scores.json in {out_dir}"
        )
    return overlay_path


def _write_overlay(stem: Path, video, tracked: set[int], writer: TrackWriter, prompts: list[ObjectPrompt]) -> Path:
    """Every frame up to the last tracked one, in time order; tracked ones tinted from their
    written masks, prompted ones with their prompts."""
    from PIL import Image

    colors = {obj_id: object_color(obj_id) for obj_id in sorted({p.obj_id for p in prompts})}
    last = max(tracked | {p.frame_idx for p in prompts})
    with OverlayVideoWriter(stem, video.fps, video.size) as overlay:
        for frame_idx in range(last + 1):
            frame = video.read(frame_idx)
            if frame_idx in tracked:
                labels = np.asarray(Image.open(writer.out_dir / f"{writer.name(frame_idx)}.png"))
                frame = overlay_labels(frame, labels, colors)
            overlay.add(_with_prompts(frame, prompts, frame_idx))
    return overlay.path


def _with_prompts(frame, prompts: list[ObjectPrompt], frame_idx: int):
    frame_prompts = [prompt for prompt in prompts if prompt.frame_idx == frame_idx]
    return draw_prompts(frame, frame_prompts) if frame_prompts else frame


def track_stream(model, source: LiveSource, prompts: list[ObjectPrompt], out_dir: Path, max_frames: int | None, about: dict) -> Path:
    """Tracks a live source forward as its frames arrive, with a bounded streaming session (see
    `write_stream_tracking`). Returns the overlay's path."""
    from ..video_processing import EdgeTamVideoProcessor

    processor = processor_for(EdgeTamVideoProcessor, model)
    session = processor.init_video_session(inference_device=model.device, video_storage_device="cpu")

    def track_next(frame, frame_idx: int, writer: TrackWriter) -> np.ndarray:
        _add_prompts(processor, session, prompts, frame_idx, session.num_frames, frame.size)
        output = model(session, frame=processor.preprocess_frame(frame))
        return writer.add(processor, output, frame.size, frame_idx)

    return write_stream_tracking(source, prompts, out_dir, max_frames, about, track_next)


def write_stream_tracking(source: LiveSource, prompts: list[ObjectPrompt], out_dir: Path, max_frames: int | None, about: dict, track_next) -> Path:
    """The loop of `--stream`: frames before the first prompted one only go to the overlay; from
    it on, `track_next(frame, frame_idx, writer)` adds the frame (and its prompts) to the
    backend's streaming session, writes its result and returns its label map. Returns the
    overlay's path; Ctrl-C closes the outputs over the frames tracked so far and is raised again."""
    first_prompted = min(prompt.frame_idx for prompt in prompts)
    colors = {obj_id: object_color(obj_id) for obj_id in sorted({p.obj_id for p in prompts})}
    frames = source.frames()
    first = next(frames, None)
    if first is None:
        raise ValueError(f"SOURCE: no frames could be read from {source.source}")
    size = first.size
    check_inside(prompts, *size, what="video frame")
    writer = TrackWriter(out_dir, {**about, "size": list(size), "fps": source.fps, "direction": "forward", **_prompts_json(prompts)})
    completed, started, streamed = False, time.monotonic(), 0
    latency = LatencyRecorder(skip=1)  # the prompted first frame also warms up: left out
    bar = progress(desc="tracking", unit="frame")  # shows frames per second
    overlay = OverlayVideoWriter(writer.out_dir / "overlay", source.fps, size)
    try:
        with overlay:
            for frame_idx, frame in enumerate(_then(first, frames)):
                if frame.size != size:
                    raise ValueError(f"SOURCE: frame {frame_idx} is {frame.size[0]}x{frame.size[1]}, the first frame {size[0]}x{size[1]}")
                if max_frames is not None and writer.num_frames >= max_frames:
                    break
                if frame_idx >= first_prompted:
                    with latency.frame():
                        labels = track_next(frame, frame_idx, writer)
                    if streamed == 0:
                        # What the first frame built (model, session, caches) lives as long as the
                        # stream: out of the collector's full collections, which would walk it every time.
                        gc.freeze()
                    streamed += 1
                    frame = overlay_labels(frame, labels, colors)
                    bar.update()
                overlay.add(_with_prompts(frame, prompts, frame_idx))
        completed = True
    finally:
        gc.unfreeze()  # the caller's objects go back to the collector (the CLI runs in-process in tests)
        bar.close()
        writer.close()
        writer.publish()
        seconds = time.monotonic() - started
        print(
            f"{'tracked' if completed else 'stopped after'} {writer.num_frames} frame(s) "
            f"({writer.num_frames / max(seconds, 1e-9):.1f} frames/s); wrote <frame>.png masks, {overlay.path.name}, "
            f"scores.jsonl and scores.json in {out_dir}"
        )
        summary = latency.summary()
        if summary is not None:
            print(f"{summary.line()} (the first tracked frame left out)")
    missed = sorted({p.frame_idx for p in prompts} - set(range(first_prompted, first_prompted + streamed)))
    if missed:
        logger.warning("the stream ended before the prompted frame(s) %s", missed)
    return out_dir / overlay.path.name


def _then(first, rest):
    yield first
    yield from rest
