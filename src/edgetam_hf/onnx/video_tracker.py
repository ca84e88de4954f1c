"""`OnnxVideoTracker`: objects tracked through a video by the exported graphs, with NumPy and
onnxruntime alone (no torch).

The rules are those of the PyTorch session, from the same code (`edgetam_hf.tracking.tracker`):
a prompt on a frame an object has not been run on is an initial conditioning frame, segmented
without memory; on a frame already tracked it is a correction, segmented with the memory and
the previous logits. A mask prompt is the result itself, on any frame. Removing an object, or an
object's prompts on a frame, keeps the other objects' results. Before tracking, prompt results
are consolidated: every object gets a result on every prompted frame (a placeholder without one)
and a memory encoded from its binarised mask. Tracking reuses those and runs every other frame
from the memory bank, objects that read the same memories in one batch. The graphs do the
tensor work (`video_backend`).

Frames come as a sequence (read when needed) or one at a time with `add_frame` (streaming; see
`video_frames`). Only the features of the most recently used frames are kept, and with
`max_stored_frames` only that many tracked frames' results are kept behind the newest one
(besides the conditioning frames and their neighbours), so a stream of any length runs in
bounded memory; what such a tracker forgot is refused with a ValueError, never read as missing.
"""

from pathlib import Path

import numpy as np

from ..tracking import tracker
from ..tracking.state import TrackerState
from .image_ops import upsample_logits, video_pixel_values
from .manifest import IMAGE_ENCODER, MASK_PROMPT, MEMORY_ENCODER, TRACKING_STEP, read_manifest
from .memory_plan import memory_window
from .video_backend import OnnxTrackingBackend
from .video_frames import OnnxVideoFrames
from .video_prompts import check_prompt, mask_prompt, point_prompt
from .video_state import OnnxVideoFrame

MEMORY_DTYPES = ("bfloat16", "float32")


class OnnxVideoTracker:
    """Tracks objects through one video with an export folder of a video model.

    >>> tracker = OnnxVideoTracker("edgetam-onnx", frames)                  # doctest: +SKIP
    >>> tracker.add_prompt(0, obj_id=1, points=[[210, 350]])               # doctest: +SKIP
    >>> for frame in tracker.propagate():                                  # doctest: +SKIP
    ...     masks = tracker.masks(frame)                                   # (num_objects, H, W) bool
    """

    def __init__(
        self,
        folder,
        frames=None,
        video_size: tuple[int, int] | None = None,
        memory_dtype: str = "bfloat16",
        max_cached_features: int = 1,
        max_stored_frames: int | None = None,
        fill_hole_area: int | None = None,
        providers: list[str] | None = None,
        session_options=None,
    ):
        """
        Args:
            folder: what `edgetam-hf export` wrote for a video model.
            frames: a sequence of frames (PIL images or (H, W, 3) uint8 arrays), read when needed;
                None to stream them in with `add_frame`.
            video_size: (height, width) of the frames; default: that of the first frame.
            memory_dtype: "bfloat16" rounds stored memories as the PyTorch session does by
                default (and the original); "float32" keeps them unrounded.
            max_cached_features: how many frames' image features are kept (most recently used).
            max_stored_frames: keep the tracked results of at most this many frames behind the
                newest tracked one (at least the memory window), besides the conditioning frames
                and the frames next to them; None keeps every result.
            fill_hole_area: fill background regions of up to this many low-resolution pixels
                (default: the exported model's `fill_hole_area`; 0 turns it off).
            providers, session_options: as onnxruntime's `InferenceSession` takes them.
        """
        import onnxruntime

        if memory_dtype not in MEMORY_DTYPES:
            raise ValueError(f"memory_dtype must be one of {MEMORY_DTYPES}, got {memory_dtype!r}")
        self.folder = Path(folder).expanduser()
        self.manifest = read_manifest(self.folder, video=True)
        self.settings = self.manifest["video"]
        if max_stored_frames is not None and (
            isinstance(max_stored_frames, bool) or not isinstance(max_stored_frames, int) or max_stored_frames < self.memory_window
        ):
            raise ValueError(
                f"max_stored_frames must be None or an int of at least {self.memory_window} (the frames a tracked "
                f"frame reads); got {max_stored_frames!r}"
            )
        preprocessing = self.manifest["preprocessing"]
        self.image_size = int(preprocessing["image_size"])
        self.mask_size = int(preprocessing["mask_size"])
        self.dtype = np.dtype(self.manifest["dtype"])
        self.memory_dtype = memory_dtype
        self.max_stored_frames = max_stored_frames
        self._sessions = {
            name: onnxruntime.InferenceSession(
                str(self.folder / self.manifest["graphs"][name]["file"]),
                sess_options=session_options,
                providers=providers or ["CPUExecutionProvider"],
            )
            for name in (IMAGE_ENCODER, MEMORY_ENCODER, TRACKING_STEP, MASK_PROMPT)
            if name in self.manifest["graphs"]  # exports older than mask prompts lack MASK_PROMPT
        }
        if fill_hole_area is not None and (isinstance(fill_hole_area, bool) or not isinstance(fill_hole_area, int) or fill_hole_area < 0):
            raise ValueError(f"fill_hole_area must be an int >= 0 or None, got {fill_hole_area!r}")
        self.fill_hole_area = self.settings["fill_hole_area"] if fill_hole_area is None else fill_hole_area
        step_inputs = {value["name"]: value["shape"] for value in self.manifest["graphs"][TRACKING_STEP]["inputs"]}
        # Per object: (S, T, mem_dim) memory slots and (P, hidden) pointer slots.
        slot_shapes = tuple(step_inputs["memory_tokens"][1:]), tuple(step_inputs["object_pointers"][1:])
        self.num_memory_slots, self.num_pointer_slots = slot_shapes[0][0], slot_shapes[1][0]

        self._frames = OnnxVideoFrames(frames, self._encode, max_cached_features, video_size)
        self.is_streaming = self._frames.is_streaming
        self._backend = OnnxTrackingBackend(
            self._sessions, self.folder, self.settings, self._frames, self.dtype, self.mask_size, slot_shapes,
            memory_dtype, self.fill_hole_area, keep_behind=max_stored_frames,
        )
        self._state = TrackerState(np.concatenate, kind="tracker", unbounded_hint="make the tracker with max_stored_frames=None")

    # ------------------------------------------------------------------ frames

    @property
    def num_frames(self) -> int:
        return self._frames.num_frames

    @property
    def video_size(self) -> tuple[int, int] | None:
        """(height, width) of the frames (of a stream: known from its first frame)."""
        return self._frames.video_size

    @property
    def memory_window(self) -> int:
        """The fewest `max_stored_frames` that keeps every memory a later frame reads."""
        return memory_window(self.settings)

    def add_frame(self, frame) -> int:
        """Streams in the next frame (its features are computed now); returns its index."""
        return self._frames.add(frame)

    def _encode(self, frame):
        pixel_values = video_pixel_values(
            frame, self.image_size, self.manifest["preprocessing"]["image_mean"], self.manifest["preprocessing"]["image_std"]
        )
        return tuple(self._sessions[IMAGE_ENCODER].run(None, {"pixel_values": pixel_values.astype(self.dtype)}))

    # ------------------------------------------------------------------ prompts

    def reset(self) -> None:
        """Forgets every object, prompt and result (the frames stay)."""
        self._state.reset_tracking_data()

    @property
    def object_ids(self) -> list[int]:
        return self._state.obj_ids

    def add_prompt(
        self, frame_idx: int, obj_id: int, points=None, labels=None, box=None, mask=None, clear_old_inputs: bool = True
    ) -> OnnxVideoFrame:
        """Segments one object on one frame from clicks and / or a box, or from a mask, and returns
        every object's result on that frame (`EdgeTamVideoProcessor.add_inputs_to_inference_session`
        then the model's call on the frame).

        Args:
            frame_idx: the frame; when streaming, one that has arrived.
            obj_id: the object (an int); a new id adds an object.
            points: [[x, y], ...] in video pixels; labels: 1 positive, 0 negative (default all 1).
            box: [x0, y0, x1, y1] in video pixels.
            mask: a binary (height, width) mask of the frame (nonzero is foreground); not with
                points or a box. It becomes the object's result as it is, on any frame.
            clear_old_inputs: replace the object's prompts on this frame (True), or add the clicks
                after its earlier clicks there (False; not with a box, nor mixed with a mask).
        """
        self._backend.check_frame_idx(frame_idx)
        existing = self._state.objects.get(obj_id) if isinstance(obj_id, int) else None
        check_prompt(obj_id, points, box, mask, clear_old_inputs, existing, frame_idx)
        if mask is not None:
            self._state.add_mask_prompt(obj_id, frame_idx, mask_prompt(mask, self.video_size, self.image_size))
        else:
            prompt = point_prompt(points, labels, box, self.video_size, self.image_size)
            self._state.add_point_prompt(obj_id, frame_idx, prompt, append=not clear_old_inputs)
        return tracker.run_frame(self._backend, self._state, frame_idx)

    def clear_prompts_in_frame(self, frame_idx: int, obj_id: int) -> OnnxVideoFrame:
        """Removes one object's prompts on one frame (the model's `clear_prompts_in_frame`): a frame
        left without prompts is no longer a conditioning frame (its results are recomputed by the
        next propagation), and with no conditioning frame left every result is forgotten.
        Returns every object's result on the frame."""
        return tracker.clear_prompts_in_frame(self._backend, self._state, frame_idx, obj_id)

    def remove_object(self, obj_id: int) -> list[OnnxVideoFrame]:
        """Removes an object (the model's `remove_object`); the other objects keep their results.
        Returns every object's result on the frames where it had prompts (none if it was the only one)."""
        return tracker.remove_object(self._backend, self._state, obj_id)

    # ------------------------------------------------------------------ tracking

    def propagate(self, start_frame_idx: int | None = None, max_frame_num_to_track: int | None = None, reverse: bool = False):
        """Tracks every object frame by frame, yielding `OnnxVideoFrame`s (the model's
        `propagate_in_video_iterator`): from the first prompted frame by default, over
        `max_frame_num_to_track` more frames (default: to the end, or to frame 0 when `reverse`)."""
        for frame in tracker.propagate(self._backend, self._state, start_frame_idx, max_frame_num_to_track, reverse):
            self._forget_streamed_pixels(frame.frame_idx)
            yield frame

    def track(self, frame_idx: int, reverse: bool = False) -> OnnxVideoFrame:
        """One frame of tracking (when streaming: the frame just added), as `model(session, frame_idx=...)`."""
        frame = tracker.run_frame(self._backend, self._state, frame_idx, reverse)
        self._forget_streamed_pixels(frame_idx)
        return frame

    def _forget_streamed_pixels(self, frame_idx: int) -> None:
        """A stream keeps the pixels of its newest frame and of the frames a later call encodes again."""
        self._frames.forget_streamed_before(frame_idx, self._state.frames_needing_pixels())

    # ------------------------------------------------------------------ outputs

    def masks(self, frame: OnnxVideoFrame, binarize: bool = True, mask_threshold: float = 0.0) -> np.ndarray:
        """(num_objects, height, width) masks at the video's size (bool, or float32 logits)."""
        logits = upsample_logits(frame.mask_logits[:, 0], self.video_size)
        return logits > mask_threshold if binarize else logits

