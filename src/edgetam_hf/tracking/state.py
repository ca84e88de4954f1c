"""`TrackerState`: every object of one video with its prompts and results, the prompts waiting
to be run, the prompted frames whose results tracking reuses, and what a bounded tracker forgot.
The PyTorch session is one (with frames on a device); the ONNX tracker keeps one."""

from collections.abc import Callable

from .frame_ranges import FrameRanges
from .records import PendingPrompt, PointPrompt, Tensor, TrackedObject


class TrackerState:
    """The bookkeeping of tracking objects through one video (original: the `inference_state` dict).

    Args:
        concatenate: joins tensors along an axis (`torch.cat` / `np.concatenate`), for clicks
            added to a frame's earlier ones.
        kind: what the errors call the owner ("session", "tracker").
        unbounded_hint: how to make an owner that keeps every result, for the errors of a bounded one.
    """

    def __init__(self, concatenate: Callable[[list, int], Tensor], kind: str, unbounded_hint: str):
        self._concatenate = concatenate
        self._kind = kind
        self._unbounded_hint = unbounded_hint
        # Objects in the order they were first prompted: the original's object index.
        self.objects: dict[int, TrackedObject] = {}
        self.pending_prompts: list[PendingPrompt] = []
        # Frames whose results come from prompts and are reused as they are by tracking
        # (original: "consolidated_frame_inds"), by kind.
        self.consolidated_conditioning_frames: set[int] = set()
        self.consolidated_tracked_frames: set[int] = set()
        self.tracking_started = False
        # Tracked frames whose results a bounded tracker has forgotten.
        self.forgotten_frames = FrameRanges()

    # ------------------------------------------------------------------ objects

    @property
    def obj_ids(self) -> list[int]:
        return list(self.objects)

    def get_object(self, obj_id, name: str = "obj_id") -> TrackedObject:
        """The object with this id; a ValueError naming `name` if there is none."""
        tracked = self.objects.get(obj_id) if isinstance(obj_id, int) and not isinstance(obj_id, bool) else None
        if tracked is None:
            raise ValueError(f"{name}={obj_id!r} is not an object of this {self._kind}; its objects are {self.obj_ids}")
        return tracked

    def get_or_add_object(self, obj_id) -> TrackedObject:
        """The object with this id, created on first use (objects may join at any time)."""
        if isinstance(obj_id, bool) or not isinstance(obj_id, int):
            raise ValueError(f"obj_ids must be ints, got {obj_id!r}")
        if obj_id not in self.objects:
            self.objects[obj_id] = TrackedObject(obj_id)
        return self.objects[obj_id]

    def remove_object_state(self, obj_id: int) -> None:
        del self.objects[obj_id]
        self.pending_prompts = [prompt for prompt in self.pending_prompts if prompt.obj_id != obj_id]

    # ------------------------------------------------------------------ prompts

    def add_point_prompt(self, obj_id: int, frame_idx: int, prompt: PointPrompt, append: bool = False) -> None:
        """Queues an object's clicks on a frame for the next call on it; they replace its mask
        prompt there, and its earlier clicks unless `append` (then they follow them)."""
        self.check_frame_kept(frame_idx)
        tracked = self.get_or_add_object(obj_id)
        previous = tracked.point_prompts.get(frame_idx)
        if append and previous is not None:
            prompt = PointPrompt(
                self._concatenate([previous.coordinates, prompt.coordinates], 1),
                self._concatenate([previous.labels, prompt.labels], 1),
            )
        tracked.point_prompts[frame_idx] = prompt
        tracked.mask_prompts.pop(frame_idx, None)
        self.pending_prompts.append(PendingPrompt(obj_id, frame_idx, points=prompt))

    def add_mask_prompt(self, obj_id: int, frame_idx: int, mask: Tensor) -> None:
        """Queues an object's binary mask on a frame; it replaces its clicks there."""
        self.check_frame_kept(frame_idx)
        tracked = self.get_or_add_object(obj_id)
        tracked.mask_prompts[frame_idx] = mask
        tracked.point_prompts.pop(frame_idx, None)
        self.pending_prompts.append(PendingPrompt(obj_id, frame_idx, mask=mask))

    def take_runnable_prompts(self, num_frames: int) -> list[PendingPrompt]:
        """Removes and returns the queued prompts whose frame has arrived, in the order given."""
        runnable = [prompt for prompt in self.pending_prompts if prompt.frame_idx < num_frames]
        self.pending_prompts = [prompt for prompt in self.pending_prompts if prompt.frame_idx >= num_frames]
        return runnable

    def has_pending_prompt(self, frame_idx: int) -> bool:
        return any(prompt.frame_idx == frame_idx for prompt in self.pending_prompts)

    def clear_prompts(self, obj_id: int, frame_idx: int) -> None:
        """Forgets an object's prompts on a frame, queued or already run (not the results they made)."""
        tracked = self.get_object(obj_id)
        tracked.point_prompts.pop(frame_idx, None)
        tracked.mask_prompts.pop(frame_idx, None)
        tracked.prompt_results.conditioning.pop(frame_idx, None)
        tracked.prompt_results.tracked.pop(frame_idx, None)
        self.pending_prompts = [
            prompt for prompt in self.pending_prompts if (prompt.obj_id, prompt.frame_idx) != (obj_id, frame_idx)
        ]

    # ------------------------------------------------------------------ what tracking reads

    def conditioning_frames(self) -> set[int]:
        """Every frame that conditions some object."""
        frames = set(self.consolidated_conditioning_frames)
        for tracked in self.objects.values():
            frames.update(tracked.results.conditioning)
        return frames

    def frames_needing_pixels(self) -> set[int]:
        """Frames a later call encodes again: conditioning frames (objects joining later get
        placeholders there) and frames with prompts not yet consolidated."""
        frames = self.conditioning_frames() | {prompt.frame_idx for prompt in self.pending_prompts}
        for tracked in self.objects.values():
            frames.update(tracked.prompt_results.conditioning, tracked.prompt_results.tracked)
        return frames

    # ------------------------------------------------------------------ bounded forgetting

    def check_frame_kept(self, frame_idx: int, name: str = "frame_idx") -> None:
        """Raises a ValueError naming `name` if a bounded tracker has forgotten the frame's results."""
        if frame_idx in self.forgotten_frames:
            raise ValueError(
                f"{name}={frame_idx}: this bounded {self._kind} has forgotten that frame's results (it keeps the "
                "conditioning frames, the frames next to them and the last frames tracked), so it cannot be "
                f"corrected or tracked from again; {self._unbounded_hint} for corrections and re-propagation over old frames"
            )

    def check_memories_kept(self, frames_read: list[int], frame_idx: int) -> None:
        """A bounded tracker refuses to compute a frame from memories it has forgotten: the result
        would differ from that of a tracker that keeps everything."""
        for t in frames_read:
            if t in self.forgotten_frames:
                raise ValueError(
                    f"frame {frame_idx} would read the memory of frame {t}, which this bounded {self._kind} has forgotten "
                    "(it keeps the conditioning frames, the frames next to them and the last frames tracked); "
                    f"{self._unbounded_hint} to track over old frames again"
                )

    def forget_frames_behind(self, frame_idx: int, reverse: bool, keep_behind: int, window: int) -> set[int]:
        """After tracking `frame_idx`, forgets the tracked frames more than `keep_behind` frames
        behind it in the direction of tracking, except the conditioning frames, the frames within
        `window` (the memory window) of one (tracking the other way from a conditioning frame
        reads those) and frames with a queued prompt. Returns the frames forgotten now."""
        conditioning = self.conditioning_frames()
        step = 1 if reverse else -1

        def forgettable(t: int) -> bool:
            behind = (t - frame_idx) * step > keep_behind
            return behind and all(abs(t - c) > window for c in conditioning) and not self.has_pending_prompt(t)

        stale = set()
        for tracked in self.objects.values():
            stale.update(t for t in tracked.results.tracked if forgettable(t))
            stale.update(t for t in tracked.tracked_frames if forgettable(t))
        for t in stale:
            for tracked in self.objects.values():
                tracked.results.tracked.pop(t, None)
                tracked.tracked_frames.pop(t, None)
            self.consolidated_tracked_frames.discard(t)
            self.forgotten_frames.add(t)
        return stale

    # ------------------------------------------------------------------ resets

    def clear_tracking_results(self) -> None:
        """Forget every prompt and result but keep the objects (original: `_reset_tracking_results`)."""
        for tracked in self.objects.values():
            tracked.clear()
        self.pending_prompts.clear()
        self.consolidated_conditioning_frames.clear()
        self.consolidated_tracked_frames.clear()
        self.forgotten_frames.clear()
        self.tracking_started = False

    def reset_tracking_data(self) -> None:
        """Forget every object, prompt and result (original: `reset_state`)."""
        self.clear_tracking_results()
        self.objects.clear()
