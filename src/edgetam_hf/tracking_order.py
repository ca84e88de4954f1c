"""Which frames a propagation visits, in order: the original's start and end rules, shared by the
PyTorch session (`video/propagation.py`) and the onnxruntime tracker (`onnx/video_tracker.py`).
Plain Python, so that the torch-free runtime can import it."""


def frames_to_track(start_frame_idx: int, max_frame_num_to_track: int | None, reverse: bool, num_frames: int) -> range:
    """Frame indices from `start_frame_idx` over `max_frame_num_to_track` more frames (None: to the
    end of a `num_frames` video, or to frame 0 when `reverse`)."""
    if max_frame_num_to_track is None:
        max_frame_num_to_track = num_frames
    if isinstance(max_frame_num_to_track, bool) or not isinstance(max_frame_num_to_track, int) or max_frame_num_to_track < 0:
        raise ValueError(f"max_frame_num_to_track must be a non-negative int, got {max_frame_num_to_track!r}")
    if reverse:
        end_frame_idx = max(start_frame_idx - max_frame_num_to_track, 0)
        # the original does not track backwards from frame 0, not even frame 0 itself
        return range(start_frame_idx, end_frame_idx - 1, -1) if start_frame_idx > 0 else range(0)
    end_frame_idx = min(start_frame_idx + max_frame_num_to_track, num_frames - 1)
    return range(start_frame_idx, end_frame_idx + 1)
