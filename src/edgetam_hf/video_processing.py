"""EdgeTamVideoProcessor: video frames and per-object prompts -> an inference session.

Frames are preprocessed as the original video predictor loads them (sam2/utils/misc.py,
`_load_img_as_tensor` and `load_video_frames_from_jpg_images`): decoded with PIL, resized by
PIL's default filter (bicubic) to 1024x1024 on uint8, divided by 255 in float64, cast to float32,
then normalised with the ImageNet mean and std in float32. This differs from the image
predictor's preprocessing (float bilinear resize), and so from `EdgeTamImageProcessor`.

Prompts are turned into the model's coordinates with the same float32 operations as
`SAM2VideoPredictor.add_new_points_or_box` (divide by the frame's width / height, multiply by 1024;
a box becomes two corner points placed before the clicks) and masks are resized as
`add_new_mask` does. The API is transformers' `Sam2VideoProcessor`'s.
"""

import logging
import numbers
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers.image_processing_utils import BatchFeature

from .conventions import BOX_CORNER_LABELS
from .image_modes import to_rgb8
from .image_processing import IMAGENET_MEAN, IMAGENET_STD, as_size_list
from .processing import EdgeTamProcessor
from .video.frame_source import FolderFrames, FrameReader, LazyFrames, open_frames
from .tracking.records import PointPrompt
from .video.session import EdgeTamVideoInferenceSession

logger = logging.getLogger(__name__)



class EdgeTamVideoProcessor(EdgeTamProcessor):
    """Prepares videos and prompts for `EdgeTamVideoModel` (original: the input handling of
    `sam2.sam2_video_predictor.SAM2VideoPredictor`; API: transformers' `Sam2VideoProcessor`).

    Calling it works as `EdgeTamProcessor.__call__`, except that images are preprocessed as video
    frames: use it on a streamed frame, `model(session, frame=processor(images=frame)["pixel_values"])`.
    """

    def _encode_images_or_sizes(self, images, original_sizes, images_kwargs) -> dict:
        if images is None:
            return super()._encode_images_or_sizes(images, original_sizes, images_kwargs)
        if images_kwargs:
            raise ValueError(f"video frames take no preprocessing options, got {sorted(images_kwargs)}")
        is_batch = isinstance(images, (list, tuple)) or (isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4)
        encoding = dict(self.preprocess_frames(images if is_batch else [images]))
        if original_sizes is not None and as_size_list(original_sizes, "original_sizes") != as_size_list(
            encoding["original_sizes"], "original_sizes"
        ):
            raise ValueError("original_sizes disagrees with the sizes of images; pass only one of them")
        return encoding

    def preprocess_frames(self, frames) -> BatchFeature:
        """Frames -> `pixel_values` (num_frames, 3, 1024, 1024) float32 and `original_sizes`
        (num_frames, 2) int64 as (height, width).

        Args:
            frames: a list of PIL images or uint8 arrays / tensors ((H, W, 3), (3, H, W) or (H, W)),
                a (num_frames, H, W, 3) uint8 array, or a folder of JPEG / PNG frames (read in
                natural order of their names, as `video.frame_source` reads folders).
        """
        images = _frames_as_pil(frames)
        pixel_values = torch.stack([self.preprocess_frame(image) for image in images])
        original_sizes = torch.tensor([[image.height, image.width] for image in images], dtype=torch.int64)
        return BatchFeature(data={"pixel_values": pixel_values, "original_sizes": original_sizes})

    def preprocess_frame(self, image: Image.Image) -> torch.Tensor:
        """One PIL frame -> (3, 1024, 1024) float32: uint8 bicubic resize, / 255 in float64, then
        normalised in float32."""
        side = self.target_size
        resized = np.array(to_rgb8(image, "frames").resize((side, side)))
        unit_pixels = torch.from_numpy(resized / 255.0).permute(2, 0, 1).to(torch.float32)
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
        return (unit_pixels - mean) / std

    def init_video_session(
        self,
        video=None,
        inference_device: str | torch.device = "cpu",
        inference_state_device: str | torch.device | None = None,
        processing_device: str | torch.device | None = None,
        video_storage_device: str | torch.device | None = None,
        max_vision_features_cache_size: int = 1,
        dtype: torch.dtype = torch.float32,
        memory_dtype: torch.dtype = torch.bfloat16,
        bounded: bool | None = None,
        frame_cache_size: int = 4,
    ) -> EdgeTamVideoInferenceSession:
        """Starts a session on a whole video, or an empty one to stream frames into.

        Args:
            video: a folder of frames, a video file (PyAV) or a `FrameReader`: read and
                preprocessed frame by frame when needed; frames as `preprocess_frames` takes them:
                preprocessed now; None: frames are streamed in (`model(session, frame=...)`).
            inference_device: where the model runs.
            inference_state_device: where results and memories are kept (default: inference_device).
            processing_device: accepted for transformers' signature; frames are always decoded and
                resized with PIL on the CPU, as the original does.
            video_storage_device: where the preprocessed frames are kept (default: inference_device).
            max_vision_features_cache_size: how many frames' image features the session keeps.
            dtype: dtype of the frames stored up front or streamed in (frames read on demand are
                cached in float32).
            memory_dtype: dtype of the stored memories: torch.bfloat16 as the original, or
                torch.float32.
            bounded: keep only what later frames read (flat memory on long videos); default True
                when streaming, False for a whole video (corrections and re-propagation anywhere).
            frame_cache_size: how many preprocessed frames of a folder or file are kept.
        """
        pixel_values, height, width = None, None, None
        if isinstance(video, (str, Path, FrameReader)):
            reader = video if isinstance(video, FrameReader) else open_frames(video)
            pixel_values = LazyFrames(reader, self.preprocess_frame, frame_cache_size)
            width, height = reader.size
        elif video is not None:
            encoding = self.preprocess_frames(video)
            pixel_values = encoding["pixel_values"]
            sizes = {tuple(size) for size in encoding["original_sizes"].tolist()}
            if len(sizes) != 1:
                raise ValueError(f"video: every frame must have the same size, got {sorted(sizes)}")
            height, width = sizes.pop()
        if height is not None:
            height, width = _size_tensors(height, width)
        return EdgeTamVideoInferenceSession(
            video=pixel_values,
            video_height=height,
            video_width=width,
            inference_device=inference_device,
            inference_state_device=inference_state_device,
            video_storage_device=video_storage_device,
            dtype=dtype,
            max_vision_features_cache_size=max_vision_features_cache_size,
            memory_dtype=memory_dtype,
            bounded=bounded,
        )

    def add_inputs_to_inference_session(
        self,
        inference_session: EdgeTamVideoInferenceSession,
        frame_idx: int,
        obj_ids: list[int] | int,
        input_points=None,
        input_labels=None,
        input_boxes=None,
        input_masks=None,
        original_size: tuple[int, int] | None = None,
        clear_old_inputs: bool = True,
    ) -> EdgeTamVideoInferenceSession:
        """Adds prompts for one or more objects on one frame; the model's next call runs them.

        Args:
            inference_session: the session.
            frame_idx: the frame (of a streaming session: one that arrived, or the next one).
            obj_ids: one id or a list, one per object of the prompts; new ids add objects.
            input_points: [1][object][point][x, y] in pixels of the original frame.
            input_labels: [1][object][point]: 1 positive, 0 negative (default: all positive).
            input_boxes: [1][object][x0, y0, x1, y1] in pixels.
            input_masks: per object a binary (height, width) mask of the frame's size (a list, or
                a (num_objects, height, width) array / tensor); not together with points or boxes.
            original_size: (height, width) of the frames; needed for a streaming session's first prompts.
            clear_old_inputs: replace the object's prompts on this frame (True) or add clicks to them.
        """
        obj_ids = _checked_obj_ids(obj_ids)
        _set_frame_size(inference_session, original_size)
        inference_session.check_frame_idx(frame_idx, allow_next=True)
        if input_masks is not None:
            if input_points is not None or input_boxes is not None:
                raise ValueError("input_masks cannot be given together with input_points or input_boxes")
            masks = self._model_masks(inference_session, obj_ids, input_masks)
            _check_no_mixing(inference_session, frame_idx, obj_ids, clear_old_inputs, adding_mask=True)
            for obj_id, mask in zip(obj_ids, masks):
                inference_session.add_mask_prompt(obj_id, frame_idx, mask)
            return inference_session
        if input_points is None and input_boxes is None:
            raise ValueError("give at least one prompt: input_points, input_boxes or input_masks")
        if input_boxes is not None and not clear_old_inputs:
            raise ValueError("input_boxes need clear_old_inputs=True: a box must come before any click of the object")
        if input_boxes is not None and inference_session.tracking_started:
            logger.warning(
                "a box added after tracking started may not refine the mask well (EdgeTAM is trained with boxes "
                "as initial prompts); reset the session to start from the box"
            )
        prompts = self._point_prompts(inference_session, obj_ids, input_points, input_labels, input_boxes)
        _check_no_mixing(inference_session, frame_idx, obj_ids, clear_old_inputs, adding_mask=False)
        for obj_id, prompt in zip(obj_ids, prompts):
            inference_session.add_point_prompt(obj_id, frame_idx, prompt, append=not clear_old_inputs)
        return inference_session

    def _point_prompts(self, session, obj_ids, input_points, input_labels, input_boxes) -> list[PointPrompt]:
        """Per object: box corners (labels 2, 3) then its clicks, in 1024-space float32."""
        size = _frame_size(session)
        encoded = self._encode_prompts([size], input_points, input_labels, input_boxes, None)
        point_counts = _points_per_object(input_points)
        num_objects = len(point_counts) if point_counts is not None else encoded["input_boxes"].shape[1]
        if num_objects != len(obj_ids):
            raise ValueError(f"obj_ids names {len(obj_ids)} objects but the prompts describe {num_objects}")
        prompts = []
        for index in range(num_objects):
            coordinates, labels = [], []
            if "input_boxes" in encoded:
                coordinates.append(encoded["input_boxes"][0, index].reshape(2, 2))
                labels.append(torch.tensor(BOX_CORNER_LABELS, dtype=torch.int32))
            if point_counts is not None and point_counts[index] > 0:
                count = point_counts[index]
                coordinates.append(encoded["input_points"][0, index, :count])
                labels.append(encoded["input_labels"][0, index, :count].to(torch.int32))
            prompts.append(PointPrompt(torch.cat(coordinates)[None], torch.cat(labels)[None]))
        return prompts

    def _model_masks(self, session, obj_ids, input_masks) -> list[torch.Tensor]:
        """Per object: the binary mask at the model's input size (1, 1, 1024, 1024), resized as the
        original `add_new_mask` does (antialiased bilinear, then >= 0.5)."""
        if isinstance(input_masks, (np.ndarray, torch.Tensor)) and input_masks.ndim == 3:
            input_masks = list(input_masks)
        elif not isinstance(input_masks, (list, tuple)):
            input_masks = [input_masks]
        if len(input_masks) != len(obj_ids):
            raise ValueError(f"input_masks holds {len(input_masks)} masks for {len(obj_ids)} obj_ids")
        expected = _frame_size(session)
        side = self.target_size
        masks = []
        for index, mask in enumerate(input_masks):
            # As add_new_mask: an array is read as booleans, a tensor is used as it is.
            if not isinstance(mask, torch.Tensor):
                mask = torch.tensor(np.asarray(mask), dtype=torch.bool)
            while mask.ndim > 2 and mask.shape[0] == 1:
                mask = mask[0]
            if tuple(mask.shape) != expected:
                raise ValueError(
                    f"input_masks[{index}] must be a (height, width) = {expected} mask of the frame, got {tuple(mask.shape)}"
                )
            mask = mask.float()[None, None]
            if expected != (side, side):
                mask = F.interpolate(mask, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
                mask = (mask >= 0.5).float()
            masks.append(mask.to(session.inference_device))
        return masks


def _frames_as_pil(frames) -> list[Image.Image]:
    if isinstance(frames, (str, Path)):
        reader = FolderFrames(Path(frames))
        return [reader.read(index) for index in range(len(reader))]
    if isinstance(frames, (np.ndarray, torch.Tensor)) and frames.ndim == 4:
        frames = list(frames)
    if not isinstance(frames, (list, tuple)) or len(frames) == 0:
        raise ValueError("video must be a folder of JPEG / PNG frames, a non-empty list of images or a 4D uint8 array")
    return [_as_pil(frame, index) for index, frame in enumerate(frames)]


def _as_pil(frame, index: int) -> Image.Image:
    if isinstance(frame, Image.Image):
        return frame
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu()
        if frame.ndim == 3 and frame.shape[0] in (1, 3) and frame.shape[-1] not in (1, 3):
            frame = frame.permute(1, 2, 0)
        frame = frame.numpy()
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3):
        raise ValueError(
            f"video[{index}] must be a PIL image or a uint8 (height, width[, 3]) array, as the original "
            f"decodes JPEG frames; got {type(frame).__name__} {getattr(frame, 'dtype', '')}"
        )
    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    return Image.fromarray(np.ascontiguousarray(frame))


def _size_tensors(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The session's frame size as transformers' processor sets it: 0-d int64 tensors (elements of
    `original_sizes`), so that code written for transformers' session reads the same types."""
    return torch.tensor(height, dtype=torch.int64), torch.tensor(width, dtype=torch.int64)


def _frame_size(session: EdgeTamVideoInferenceSession) -> tuple[int, int]:
    return int(session.video_height), int(session.video_width)


def _checked_obj_ids(obj_ids) -> list[int]:
    # numpy integers count as ids; bools and floats do not, even when they equal an int.
    def is_id(value) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if is_id(obj_ids):
        obj_ids = [obj_ids]
    if not isinstance(obj_ids, (list, tuple)) or not obj_ids or not all(is_id(i) for i in obj_ids):
        raise ValueError(f"obj_ids must be an int or a non-empty list of ints, got {obj_ids!r}")
    obj_ids = [int(i) for i in obj_ids]
    if len(set(obj_ids)) != len(obj_ids):
        raise ValueError(f"obj_ids must not repeat an id, got {obj_ids}")
    return obj_ids


def _set_frame_size(session: EdgeTamVideoInferenceSession, original_size) -> None:
    if original_size is not None:
        # e.g. the processor's `original_sizes[0]`, a tensor, as transformers' streaming recipe passes it
        if isinstance(original_size, (torch.Tensor, np.ndarray)):
            original_size = original_size.tolist()
        (height, width), = as_size_list([list(original_size)], "original_size")
        session.set_video_size(*_size_tensors(height, width))
    elif session.video_height is None:
        raise ValueError("original_size (height, width) is needed for the first prompts of a streaming session")


def _check_no_mixing(session, frame_idx: int, obj_ids: list[int], clear_old_inputs: bool, adding_mask: bool) -> None:
    """Masks and clicks for one object on one frame cannot be combined: a new prompt of the other
    kind must replace the old one (clear_old_inputs=True)."""
    if clear_old_inputs:
        return
    for obj_id in obj_ids:
        tracked = session.objects.get(obj_id)
        if tracked is None:
            continue
        other = tracked.point_prompts if adding_mask else tracked.mask_prompts
        if frame_idx in other:
            kind = "input_masks" if adding_mask else "input_points"
            raise ValueError(
                f"{kind} for object {obj_id} on frame {frame_idx} would mix masks and points; pass "
                "clear_old_inputs=True to replace the object's prompts on that frame"
            )


def _points_per_object(input_points) -> list[int] | None:
    if input_points is None:
        return None
    nested = input_points.tolist() if isinstance(input_points, (np.ndarray, torch.Tensor)) else input_points
    if not isinstance(nested, list) or len(nested) != 1:
        raise ValueError("input_points must be nested as [1][object][point][x, y]: one frame")
    return [len(points) for points in nested[0]]
