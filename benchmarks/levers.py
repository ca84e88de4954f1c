"""`python -m benchmarks.levers`: where one tracked frame of our video model goes, and what each
speed lever buys, measured A/B in one process on the released sizes (random weights).

Each lever is timed with and without it, the two variants alternating, on the part of the frame
it acts on; the breakdown times every component of the frame in each mode (float32, bfloat16 by
`model.to(torch.bfloat16)`, and `torch.compile` of the memory attention when it compiles).
transformers' side-by-side numbers come from `python -m benchmarks.run` (same weights, same clip).
"""

import argparse
import contextlib
import time
from collections import defaultdict

import torch

from . import environment
from .bfloat16_accuracy import print_bfloat16_accuracy
from .timing import paired_ratio, summarize, timed

COMPONENTS = (
    "trunk",
    "neck_and_projections",
    "memory_attention",
    "mask_decoder",
    "memory_encoder",
    "perceiver",
    "other",
)


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.levers", description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=6, help="frames of the synthetic clip tracked per mode")
    parser.add_argument("--modes", default="float32,bfloat16", help="float32, bfloat16, compiled (comma-separated)")
    parser.add_argument(
        "--accuracy-only",
        action="store_true",
        help="only compare bfloat16 with float32 masks on the fixture clip ($EDGETAM_FIXTURES); "
        "`python -m benchmarks.bfloat16_accuracy` also keeps components in float32 one at a time",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    options = parse_arguments(argv)
    environment.set_threads(options.threads)
    environment.install_torchvision_shim()
    print(f"threads {torch.get_num_threads()}; load average before: {environment.load_average()}", flush=True)
    from edgetam_hf.configuration import EdgeTamVideoConfig
    from edgetam_hf.modeling_video import EdgeTamVideoModel

    torch.manual_seed(0)
    model = EdgeTamVideoModel(EdgeTamVideoConfig()).eval()
    if options.accuracy_only:
        print_bfloat16_accuracy(model)
        return 0
    print("\n## Levers (ms per call, median of paired repetitions; ratio = with / without)\n")
    print("| lever | acts on | without | with | ratio |\n|---|---|---|---|---|")
    for row in lever_rows(model, options):
        print(row, flush=True)
    print("\n## One tracked frame by component (ms per frame)\n")
    modes = [mode.strip() for mode in options.modes.split(",") if mode.strip()]
    for num_objects in (1, 3):
        breakdowns = {mode: frame_breakdown(model, mode, num_objects, options) for mode in modes}
        print(f"\n{num_objects} object(s):\n")
        print("| component | " + " | ".join(modes) + " |\n|---|" + "---|" * len(modes))
        for component in (*COMPONENTS, "total"):
            cells = [_cell(breakdowns[mode], component) for mode in modes]
            print(f"| {component} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nload average after: {environment.load_average()}")
    return 0


def _cell(breakdown, component):
    if isinstance(breakdown, str):
        return breakdown
    return f"{breakdown[component]:.0f}"


# ----------------------------------------------------------------------------- levers


def _ab(without, with_, repeats):
    """Alternating calls of the two variants -> (median without, median with, median paired ratio) in ms."""
    without(), with_()
    samples = {"without": [], "with": []}
    for repeat in range(repeats):
        order = (("without", without), ("with", with_)) if repeat % 2 == 0 else (("with", with_), ("without", without))
        for name, call in order:
            samples[name].append(timed(call, torch.device("cpu")))
    ratio = paired_ratio(samples["with"], samples["without"])
    return summarize(samples["without"]).median * 1e3, summarize(samples["with"]).median * 1e3, ratio.median


def lever_rows(model, options):
    from edgetam_hf.video.hole_filling import fill_holes

    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(1, 3, 1024, 1024, generator=generator)
    with torch.no_grad():
        features = model.get_frame_features(pixels)
    memory = torch.randn(3, 7 * 512 + 64, 64, generator=generator)
    memory_position = torch.randn(3, 7 * 512 + 64, 64, generator=generator)

    def attention(num_objects, shared=True):
        vision = features.vision_features if shared else features.vision_features.expand(num_objects, -1, -1, -1)
        position = features.vision_position if shared else features.vision_position.expand(num_objects, -1, -1, -1)
        return lambda: model.memory_attention(vision, position, memory[:num_objects], memory_position[:num_objects], 7, 64)

    rows = []
    with torch.no_grad():
        model.use_original_attention_kernels(True)
        math_kernel = attention(1)
        without = timed_variant(math_kernel, options.repeats)
        model.use_original_attention_kernels(False)
        with_ = timed_variant(attention(1), options.repeats)
        rows.append(_row("fast SDPA kernel (flash) instead of the original's math kernel", "memory attention, 1 object", without, with_))
        rows.append(_row(
            "first self-attention once per frame, shared by the objects",
            "memory attention, 3 objects",
            *_ab(attention(3, shared=False), attention(3, shared=True), options.repeats),
        ))
        encoder, masks = model.memory_encoder, torch.randn(3, 1, 1024, 1024, generator=generator) * 5
        rows.append(_row(
            "memory encoder one mask at a time on CPU (its buffers stay reusable by the C allocator)",
            "memory encoder, 3 masks",
            *_ab(
                lambda: encoder._fuse(encoder.feature_projection(features.vision_features), masks, False),
                lambda: encoder(features.vision_features, masks),
                options.repeats,
            ),
        ))
        trunk = model.vision_encoder.backbone
        model.vision_encoder.fold_for_inference(True)  # float32 folds only when asked (parity)
        rows.append(_row(
            "RepViT re-parameterised (BatchNorms folded, branches merged) at inference",
            "RepViT trunk, float32 (opt-in)",
            *_ab(lambda: _unfolded(trunk, pixels), lambda: trunk(pixels), options.repeats),
        ))
        model.vision_encoder.fold_for_inference(None)
        rows.append(_row(
            "activations overwritten in place in inference (BatchNorm, GELU / ReLU, residual sums, LayerNorm2d)",
            "frame features (trunk, neck, projections)",
            *_ab(lambda: _out_of_place(lambda: model.get_frame_features(pixels)), lambda: model.get_frame_features(pixels), options.repeats),
        ))
        rows.append(_row(
            "activations overwritten in place in inference",
            "memory attention, 3 objects",
            *_ab(lambda: _out_of_place(attention(3)), attention(3), options.repeats),
        ))
        rows.append(_row(
            "FPN lateral conv and mask-decoder projection composed into one 1x1 conv (two highest levels)",
            "frame features (trunk, neck, projections)",
            *_ab(lambda: _separate_projections(model, pixels), lambda: model.get_frame_features(pixels), options.repeats),
        ))
        rows.append(_row(
            "1x1 convs on channels-first maps as matrix products (no oneDNN reorder buffers)",
            "frame features (trunk, neck, projections)",
            *_ab(lambda: _pointwise_as_conv(model, pixels), lambda: model.get_frame_features(pixels), options.repeats),
        ))
        rows.append(_row(
            "depthwise 1x1 conv of the token mixers as a channel scale",
            "RepViT trunk, float32",
            *_ab(lambda: _depthwise_pointwise_as_conv(trunk, pixels), lambda: trunk(pixels), options.repeats),
        ))
        model.vision_encoder.to(torch.bfloat16)
        pixels_bf16 = pixels.bfloat16()
        rows.append(_row(
            "channels-last maps (bfloat16 only: float32 keeps the original's layout for parity)",
            "image encoder, bfloat16, folded",
            *_ab(lambda: _contiguous(model.vision_encoder, pixels_bf16), lambda: model.vision_encoder(pixels_bf16), options.repeats),
        ))
        model.vision_encoder.float()
        logits = torch.nn.functional.interpolate(torch.randn(3, 1, 32, 32, generator=generator), size=(256, 256), mode="bilinear")
        rows.append(_row("hole filling in torch, 3 masks at once (no A/B: the NumPy one is gone)", "3 masks 256x256",
                         None, summarize([timed(lambda: fill_holes(logits, 8), torch.device("cpu")) for _ in range(options.repeats)]).median * 1e3, None))
        rows.append(_row("per-frame config JSON + parameter walk (removed; its former cost)", "tracking key",
                         summarize([timed(lambda: _old_tracking_key_cost(model), torch.device("cpu")) for _ in range(options.repeats)]).median * 1e3, 0.0, None))
    return rows


def timed_variant(call, repeats):
    call()
    return summarize([timed(call, torch.device("cpu")) for _ in range(repeats)]).median * 1e3


def _row(lever, acts_on, without, with_, ratio=None):
    if ratio is None and without and with_ is not None:
        ratio = with_ / without
    fmt = lambda value: "-" if value is None else f"{value:.1f}"  # noqa: E731
    return f"| {lever} | {acts_on} | {fmt(without)} | {fmt(with_)} | {'-' if ratio is None else f'{ratio:.2f}'} |"


def _unfolded(trunk, pixels):
    """The trunk with its conv-norms and token mixers run branch by branch (as before folding)."""
    from edgetam_hf.repvit import FoldedForInference

    with _patched(FoldedForInference, "_use_folded", lambda self, dtype: False):
        return trunk(pixels)


def _out_of_place(call):
    """`call()` with every module computing out of place (as before activations were overwritten)."""
    from edgetam_hf import layers, mask_decoder, memory_attention, memory_encoder, repvit

    with contextlib.ExitStack() as stack:
        for module in (layers, mask_decoder, memory_attention, memory_encoder, repvit):
            stack.enter_context(_patched(module, "overwrites_activations", lambda _module: False))
        return call()


def _separate_projections(model, pixels):
    """Frame features through the FPN's 256-channel maps, then the decoder's projections."""
    with _patched(type(model), "_high_resolution_projections", lambda self: None):
        return model.get_frame_features(pixels)


def _depthwise_pointwise_as_conv(trunk, pixels):
    from edgetam_hf.repvit import RepVitConvNorm

    convolve = RepVitConvNorm._convolve

    def depthwise_as_conv(self, maps):
        return self.c(maps) if self.c.groups > 1 else convolve(self, maps)

    with _patched(RepVitConvNorm, "_convolve", depthwise_as_conv):
        return trunk(pixels)


def _pointwise_as_conv(model, pixels):
    """Frame features with every 1x1 conv run by oneDNN (as before the matrix products)."""
    from edgetam_hf import modeling, repvit

    conv = torch.nn.functional.conv2d
    with _patched(modeling, "pointwise_conv", conv), _patched(repvit, "pointwise_conv", conv):
        return model.get_frame_features(pixels)


def _contiguous(encoder, pixels):
    """The image encoder on channels-first maps (as before channels-last)."""
    with _patched(encoder.backbone.timm_model, "use_channels_last", False):
        return encoder(pixels)


@contextlib.contextmanager
def _patched(owner, name, value):
    previous = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, previous)


def _old_tracking_key_cost(model):
    return sum(parameter._version for parameter in model.parameters()), model.config.to_json_string()


# ----------------------------------------------------------------------------- breakdown


def frame_breakdown(base_model, mode: str, num_objects: int, options) -> dict | str:
    """Per-component milliseconds of one tracked frame (mean over the clip after one warm-up)."""
    from edgetam_hf.video.session import EdgeTamVideoInferenceSession
    from edgetam_hf.video_processing import EdgeTamVideoProcessor

    dtype = torch.bfloat16 if mode == "bfloat16" else torch.float32
    model = base_model.to(dtype)
    try:
        if mode == "compiled":
            # One graph per memory length until the memory is full (dynamo's default allows 8),
            # counted afresh for each number of objects.
            torch._dynamo.reset()
            torch._dynamo.config.recompile_limit = _frames_to_full_memory(model.config) + 1
            model.memory_attention.forward = torch.compile(model.memory_attention.forward, dynamic=False)
        processor = EdgeTamVideoProcessor()
        video = torch.randn(options.frames, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
        session = EdgeTamVideoInferenceSession(video, 480, 640, dtype=dtype)
        clicks = [[[[100.0 + 150 * index, 200.0]] for index in range(num_objects)]]
        processor.add_inputs_to_inference_session(
            session, 0, list(range(1, num_objects + 1)), input_points=clicks, input_labels=[[[1]] * num_objects]
        )
        model(session, frame_idx=0)
        times = defaultdict(float)
        parts = {
            "trunk": model.vision_encoder.backbone,
            "frame_features": model,
            "memory_attention": model.memory_attention,
            "mask_decoder": model.mask_decoder,
            "memory_encoder": model.memory_encoder,
            "perceiver": model.spatial_perceiver,
        }
        with contextlib.ExitStack() as stack:
            for name, module in parts.items():
                method = "_frame_features" if name == "frame_features" else "forward"
                stack.enter_context(_timing_forward(module, name, times, method))
            frames = model.propagate_in_video_iterator(session)
            # The prompted frame, then one warm-up frame; compiled, every frame until the memory
            # (spatial memories and object pointers) is full, as each new length compiles anew.
            warm_up_frames = _frames_to_full_memory(model.config) if mode == "compiled" else 1
            for _ in range(1 + warm_up_frames):
                next(frames)
            times.clear()
            start, count = time.perf_counter(), 0
            for _ in frames:
                count += 1
            total = (time.perf_counter() - start) / count * 1e3
        breakdown = {name: times[name] / count * 1e3 for name in parts}
        # The neck and the high-resolution projections run inside `_frame_features`, after the trunk.
        breakdown["neck_and_projections"] = breakdown.pop("frame_features") - breakdown["trunk"]
        breakdown["other"] = total - sum(breakdown.values())
        breakdown["total"] = total
        return breakdown
    except Exception as error:  # noqa: BLE001 - a mode that fails is a result to report
        return f"error: {type(error).__name__}"
    finally:
        if mode == "compiled":
            del model.memory_attention.forward
        base_model.to(torch.float32)


def _frames_to_full_memory(config) -> int:
    """Tracked frames after the prompted one until every frame reads as many memories and object
    pointers as it ever will."""
    return max(config.num_maskmem, config.max_object_pointers_in_encoder) + 1


@contextlib.contextmanager
def _timing_forward(module, name, times, method="forward"):
    forward = getattr(module, method)

    def timed_forward(*args, **kwargs):
        start = time.perf_counter()
        result = forward(*args, **kwargs)
        times[name] += time.perf_counter() - start
        return result

    own_forward = method in vars(module)  # e.g. a compiled one
    setattr(module, method, timed_forward)
    try:
        yield
    finally:
        if own_forward:
            setattr(module, method, forward)
        else:
            delattr(module, method)


if __name__ == "__main__":
    raise SystemExit(main())
