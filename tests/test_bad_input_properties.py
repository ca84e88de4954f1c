"""Bad input, proven by generation: malformed prompts, images, masks and frame indices.

Each property builds a valid call, corrupts one argument with a generated mutation (a bad number,
a missing or extra element, a wrong nesting level, a wrong type or shape, NaN / inf) and requires
that the call either works, with finite outputs, or raises a ValueError / TypeError whose message
names the corrupted argument. Never a deep torch error, never a NaN mask.

The runs are derandomised (the same examples on every run and machine); at least
`MIN_EXAMPLES_PER_RUN` examples run over the module.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _image_tiny import TINY_IMAGE_SIZE, tiny_image_model
from _video_tiny import NUM_FRAMES, TINY_IMAGE_SIZE as TINY_VIDEO_SIZE, VIDEO_HEIGHT, VIDEO_WIDTH, tiny_model, video_frames
from _video_tiny import single_thread  # noqa: F401  (fixture)
from edgetam_hf import EdgeTamImageProcessor, EdgeTamProcessor
from edgetam_hf.video_processing import EdgeTamVideoProcessor

MIN_EXAMPLES_PER_RUN = 1000
# Examples per property.
EXAMPLES = {"processor prompts": 400, "images": 150, "image model": 300, "video session": 200, "video object ids": 100}
assert sum(EXAMPLES.values()) >= MIN_EXAMPLES_PER_RUN


def _settings(what: str):
    return settings(
        max_examples=EXAMPLES[what],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _run_counted(what: str, run) -> None:
    """Runs the property `run` (which calls its `count` argument once per example) and checks
    that hypothesis did not give up early, so the module's total holds."""
    examples = []
    run(lambda: examples.append(1))
    assert len(examples) >= EXAMPLES[what], f"{what}: only {len(examples)} examples ran"


def _works_or_names(argument: str, call):
    """`call()`'s result, or None when it raised a ValueError / TypeError that names `argument`."""
    try:
        return call()
    except (ValueError, TypeError) as error:
        assert argument in str(error), f"the error does not name {argument}: {type(error).__name__}: {error}"
        return None


# ------------------------------------------------------------------------------- mutations

BAD_NUMBERS = [math.nan, math.inf, -math.inf, -1.0, -1e9, 1e9, 0.5, 7]
BAD_LEAVES = [*BAD_NUMBERS, "1", None, True, [], [1.0], {"x": 1}, b"\x00", 1 + 2j]


def _paths(value, path=()):
    """Every position in a nested list, the root included."""
    yield path
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _replace(value, path, new):
    if not path:
        return new
    copy = list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def _get(value, path):
    for index in path:
        value = value[index]
    return value


@st.composite
def mutated(draw, valid):
    """`valid` (nested lists of numbers) with one random change at one random position."""
    path = draw(st.sampled_from(list(_paths(valid))))
    node = _get(valid, path)
    kinds = ["leaf", "wrap", "unwrap", "tensor"]
    if isinstance(node, list):
        kinds += ["drop", "extra", "empty"]
    kind = draw(st.sampled_from(kinds))
    if kind == "leaf":
        new = draw(st.sampled_from(BAD_LEAVES) | st.floats(allow_nan=True, allow_infinity=True, width=32))
    elif kind == "wrap":
        new = [node]
    elif kind == "unwrap":
        new = node[0] if isinstance(node, list) and node else draw(st.sampled_from(BAD_NUMBERS))
    elif kind == "drop":
        new = node[:-1]
    elif kind == "extra":
        new = [*node, node[-1] if node else 0.0]
    elif kind == "empty":
        new = []
    else:  # the same structure as an array or a tensor, where it is rectangular
        try:
            array = np.asarray(node, dtype=draw(st.sampled_from([np.float32, np.float64, np.int64])))
        except (ValueError, TypeError):
            array = node
        new = torch.from_numpy(array) if isinstance(array, np.ndarray) and draw(st.booleans()) else array
    return _replace(valid, path, new)


@st.composite
def valid_prompts(draw, sizes):
    """Points, labels and boxes inside images of `sizes` [(height, width)], one box per object."""
    num_objects = draw(st.integers(1, 3))
    num_points = draw(st.integers(1, 3))
    points, labels, boxes = [], [], []
    for height, width in sizes:
        xs = st.floats(0, width, width=32)
        ys = st.floats(0, height, width=32)
        points.append([[[draw(xs), draw(ys)] for _ in range(num_points)] for _ in range(num_objects)])
        labels.append([[draw(st.sampled_from([0, 1])) for _ in range(num_points)] for _ in range(num_objects)])
        image_boxes = []
        for _ in range(num_objects):
            x0, x1 = sorted([draw(xs), draw(xs)])
            y0, y1 = sorted([draw(ys), draw(ys)])
            image_boxes.append([x0, y0, x1, y1])
        boxes.append(image_boxes)
    return points, labels, boxes


def bad_masks(shape):
    """Arrays near `shape`: the right one with NaN / inf / huge values, or a wrong shape or dtype."""
    wrong_shape = st.lists(st.integers(0, 5), min_size=0, max_size=5).map(
        lambda dims: tuple(d * 16 if i >= len(dims) - 2 else d for i, d in enumerate(dims))
    )
    shapes = st.just(tuple(shape)) | wrong_shape
    fill = st.sampled_from([0.0, 1.0, math.nan, math.inf, -math.inf, 1e30])
    dtypes = st.sampled_from([np.float32, np.float64, np.uint8, np.bool_, np.int64])

    @st.composite
    def build(draw):
        array = np.zeros(draw(shapes), dtype=np.float64)
        if array.size:
            array.flat[draw(st.integers(0, array.size - 1))] = draw(fill)
        with np.errstate(invalid="ignore", over="ignore"):
            array = array.astype(draw(dtypes))
        form = draw(st.sampled_from(["array", "tensor", "list of arrays"]))
        if form == "tensor":
            return torch.from_numpy(array)
        return list(array) if form == "list of arrays" and array.ndim > 0 else array

    return build()


# ------------------------------------------------------------------------------- processors and the image model


@pytest.fixture(scope="module")
def image_model():
    return tiny_image_model()


@pytest.fixture(scope="module")
def image_processor():
    size = {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    return EdgeTamProcessor(EdgeTamImageProcessor(size=size, mask_size={"height": 64, "width": 64}))


@pytest.fixture(scope="module")
def image_embeddings(image_model, image_processor):
    """The tiny model's embeddings of a 2-image batch (the prompts are what varies)."""
    pixels = image_processor(images=[np.full((40, 60, 3), 90, np.uint8), np.full((50, 30, 3), 150, np.uint8)])
    return image_model.get_image_embeddings(pixels["pixel_values"])


def _assert_finite_outputs(outputs) -> None:
    assert bool(torch.isfinite(outputs.pred_masks).all()), "NaN / inf masks"
    assert bool(torch.isfinite(outputs.iou_scores).all()), "NaN / inf IoU scores"


def test_processor_prompts(image_processor, image_model, image_embeddings):
    """Prompts in image pixels -> the processor -> the model, with one prompt argument corrupted."""
    sizes = [(40, 60), (50, 30)]
    names = ["input_points", "input_labels", "input_boxes", "input_masks", "original_sizes"]

    def run(count):
        @_settings("processor prompts")
        @given(data=st.data(), corrupted=st.sampled_from(names), with_boxes=st.booleans())
        def check(data, corrupted, with_boxes):
            count()
            points, labels, boxes = data.draw(valid_prompts(sizes))
            arguments = {"original_sizes": [list(size) for size in sizes], "input_points": points, "input_labels": labels}
            if with_boxes or corrupted == "input_boxes":
                arguments["input_boxes"] = boxes
            if corrupted == "input_masks":
                arguments["input_masks"] = data.draw(bad_masks((2, len(points[0]), 64, 64)))
            else:
                arguments[corrupted] = data.draw(mutated(arguments[corrupted]))
            inputs = _works_or_names(corrupted, lambda: image_processor(**arguments))
            if inputs is None:
                return
            # what the processor accepted, the model must run
            prompts = {key: value for key, value in inputs.items() if key.startswith("input_")}
            _assert_finite_outputs(image_model(image_embeddings=image_embeddings, **prompts))

        check()

    _run_counted("processor prompts", run)


@st.composite
def bad_images(draw):
    """Arrays, tensors, PIL-like odd objects and lists of them, of any shape and dtype."""
    kind = draw(st.sampled_from(["array", "tensor", "list", "object"]))
    if kind == "object":
        return draw(st.sampled_from([None, "image.png", 3, [], [[1, 2], [3]], b"\x89PNG"]))
    num_dims = draw(st.sampled_from([0, 1, 2, 3, 3, 3, 4, 5]))  # mostly images, some not
    shape = tuple(draw(st.integers(0, 6)) * draw(st.sampled_from([1, 7])) for _ in range(num_dims))
    dtype = draw(st.sampled_from([np.uint8, np.float32, np.float64, np.bool_, np.int64, np.int8, np.complex64]))
    array = np.zeros(shape, dtype=np.float64)
    if array.size:
        array.flat[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from([0.5, 255, -3, math.nan, math.inf]))
    with np.errstate(invalid="ignore", over="ignore"):
        array = array.astype(dtype)
    if kind == "tensor":
        return torch.from_numpy(array)
    return [array, array] if kind == "list" else array


def test_images(image_processor):
    def run(count):
        @_settings("images")
        @given(images=bad_images())
        def check(images):
            count()
            inputs = _works_or_names("images", lambda: image_processor(images=images))
            if inputs is not None:
                assert bool(torch.isfinite(inputs["pixel_values"]).all()), "NaN / inf pixel values"

        check()

    _run_counted("images", run)


@st.composite
def corrupted_tensor(draw, valid: torch.Tensor):
    """`valid` with another shape or dtype, a NaN / inf entry, or as a list or array."""
    kind = draw(st.sampled_from(["shape", "dtype", "value", "list", "array"]))
    if kind == "shape":
        dims = list(valid.shape)
        index = draw(st.integers(0, len(dims)))
        change = draw(st.sampled_from(["drop", "add", "grow", "zero"]))
        if change == "drop" and dims:
            dims.pop(min(index, len(dims) - 1))
        elif change == "add":
            dims.insert(index, draw(st.integers(1, 3)))
        elif dims:
            dims[min(index, len(dims) - 1)] = 0 if change == "zero" else dims[min(index, len(dims) - 1)] + 1
        return torch.zeros(dims, dtype=valid.dtype)
    if kind == "dtype":
        return valid.to(draw(st.sampled_from([torch.float16, torch.float64, torch.int32, torch.bool, torch.complex64])))
    if kind == "value":
        copy = valid.clone().float()
        if copy.numel():
            copy.view(-1)[draw(st.integers(0, copy.numel() - 1))] = draw(st.sampled_from(BAD_NUMBERS + [1e6]))
        return copy.to(valid.dtype) if valid.is_floating_point() else copy
    return valid.tolist() if kind == "list" else valid.numpy()


def test_image_model_tensors(image_model, image_embeddings):
    """The model called directly with tensors in its 256x256 input frame, one of them corrupted."""
    size = float(TINY_IMAGE_SIZE)
    valid = {
        "input_points": torch.tensor([[[[10.0, 20.0], [100.0, 200.0]]], [[[size, 0.0], [5.0, 5.0]]]]),
        "input_labels": torch.tensor([[[1, 0]], [[1, -1]]]),
        "input_boxes": torch.tensor([[[0.0, 0.0, 50.0, 60.0]], [[10.0, 10.0, size, size]]]),
        "input_masks": torch.zeros(2, 1, 64, 64),
        "pixel_values": torch.zeros(2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE),
    }

    def run(count):
        @_settings("image model")
        @given(data=st.data(), corrupted=st.sampled_from(list(valid)), given_names=st.sets(st.sampled_from(list(valid)[:4])))
        def check(data, corrupted, given_names):
            count()
            if corrupted == "pixel_values":
                given_names = given_names or {"input_boxes"}  # a prompt, so that the pixels are read
            arguments = {name: valid[name] for name in given_names | {corrupted}}
            if "input_labels" in arguments:
                arguments["input_points"] = valid["input_points"]
            arguments[corrupted] = data.draw(corrupted_tensor(valid[corrupted]))
            if "pixel_values" not in arguments:
                arguments["image_embeddings"] = image_embeddings
            outputs = _works_or_names(corrupted, lambda: image_model(**arguments))
            if outputs is not None:
                _assert_finite_outputs(outputs)

        check()

    _run_counted("image model", run)


# ------------------------------------------------------------------------------- the video session


@pytest.fixture(scope="module")
def video_model():
    return tiny_model()


BAD_INDICES = [-1, NUM_FRAMES, 10**6, 1.5, "0", None, True, np.int64(2), torch.tensor(1), [0], math.nan]


def _video_session_property(video_model, names: list[str], what: str) -> None:
    """Prompts on a session, then running a frame; one of frame index, object ids, prompts corrupted."""
    processor = EdgeTamVideoProcessor(target_size=TINY_VIDEO_SIZE)
    frames = video_frames()

    def run(count):
        @_settings(what)
        @given(data=st.data(), corrupted=st.sampled_from(names))
        def check(data, corrupted):
            count()
            session = processor.init_video_session(frames)
            points, labels, boxes = data.draw(valid_prompts([(VIDEO_HEIGHT, VIDEO_WIDTH)]))
            arguments = {"frame_idx": data.draw(st.integers(0, NUM_FRAMES - 1)), "obj_ids": list(range(1, len(points[0]) + 1))}
            if corrupted == "input_masks":
                num_objects = len(arguments["obj_ids"])
                arguments["input_masks"] = data.draw(bad_masks((num_objects, VIDEO_HEIGHT, VIDEO_WIDTH)))
            else:
                arguments.update(input_points=points, input_labels=labels)
                if corrupted == "input_boxes" or data.draw(st.booleans()):
                    arguments["input_boxes"] = boxes
            if corrupted in ("frame_idx", "run frame_idx"):
                bad_index = data.draw(st.sampled_from(BAD_INDICES) | st.integers(-5, 2 * NUM_FRAMES))
                if corrupted == "frame_idx":
                    arguments["frame_idx"] = bad_index
            elif corrupted == "obj_ids":
                arguments["obj_ids"] = data.draw(mutated(arguments["obj_ids"]) | st.sampled_from(BAD_INDICES))
            elif corrupted != "input_masks":
                arguments[corrupted] = data.draw(mutated(arguments[corrupted]))
            added = _works_or_names(corrupted, lambda: processor.add_inputs_to_inference_session(session, **arguments))
            if added is None:
                return
            if corrupted == "run frame_idx":
                outputs = _works_or_names("frame_idx", lambda: video_model(session, frame_idx=bad_index))
            else:  # what the processor accepted, the model must run
                outputs = video_model(session, frame_idx=arguments["frame_idx"])
            if outputs is not None:
                assert bool(torch.isfinite(outputs.pred_masks).all()), "NaN / inf masks"

        check()

    _run_counted(what, run)


def test_video_session(video_model):
    names = ["frame_idx", "input_points", "input_labels", "input_boxes", "input_masks", "run frame_idx"]
    _video_session_property(video_model, names, "video session")


def test_video_session_object_ids(video_model):
    _video_session_property(video_model, ["obj_ids"], "video object ids")
