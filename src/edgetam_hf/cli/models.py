"""`--model`, `--device`, `--dtype`, `--image-size`: where the command's model comes from and where it runs.

`--model` is a folder (ours or transformers' EdgeTAM format), Meta's original `.pt`, or a Hub
id; without it every command takes what `find_checkpoint` finds (the demo's rule), else the
default Hub id. A Hub id is looked up in the local Hugging Face cache first; without it and
without a network the command says so in one line instead of retrying for a minute.
"""

import contextlib
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    import torch

# transformers' conversion of Meta's released EdgeTAM checkpoint (loads into our classes).
DEFAULT_MODEL = "yonigozlan/EdgeTAM-hf"
CHECKPOINT_VARIABLE = "EDGETAM_CHECKPOINT"
_LOCAL_CHECKPOINTS = ("edgetam.pt", "checkpoints/edgetam.pt")  # where Meta's README puts it
FOUND_MODEL_HELP = f"$EDGETAM_CHECKPOINT, ./edgetam.pt, ./checkpoints/edgetam.pt, else {DEFAULT_MODEL}"
# torch is imported when a command runs, not when its arguments are parsed (cli/__init__.py).
DTYPE_NAMES = ("bfloat16", "float16", "float32")
_LOCAL_SUFFIXES = (".pt", ".pth", ".safetensors", ".bin")


def add_model_arguments(parser, model_help: str | None = None) -> None:
    parser.add_argument(
        "--model",
        help=model_help or f"a converted folder, Meta's original edgetam.pt, or a Hub id (default: {FOUND_MODEL_HELP})",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps, ... (default: cuda when available)")
    parser.add_argument(
        "--dtype",
        choices=("auto", *DTYPE_NAMES),
        default="auto",
        help="compute dtype (default auto: bfloat16 where the GPU or CPU computes it natively, avx512_bf16 / AMX, "
        "float32 elsewhere); bfloat16 / float16 run the float32 model under torch.autocast, as the original's demos do",
    )
    add_image_size_argument(parser)


def add_image_size_argument(parser) -> None:
    parser.add_argument(
        "--image-size",
        type=int,
        metavar="SIDE",
        help="the model's square input side, e.g. 512: ~4x faster than the released 1024, a few points less "
        "accurate (docs/performance.md); default: the model's own",
    )


def find_checkpoint() -> str | None:
    """$EDGETAM_CHECKPOINT, Meta's file where its README puts it, or the default Hub model if cached."""
    for candidate in (os.environ.get(CHECKPOINT_VARIABLE, ""), *_LOCAL_CHECKPOINTS):
        if candidate and Path(candidate).expanduser().exists():
            return candidate
    from huggingface_hub import try_to_load_from_cache

    return DEFAULT_MODEL if isinstance(try_to_load_from_cache(DEFAULT_MODEL, "config.json"), str) else None


def model_source(given: str | None) -> str:
    """`--model` as given, else the checkpoint `find_checkpoint` finds, else the default Hub id
    (which, offline and not cached, `load_model` answers with a one-line error)."""
    return given or find_checkpoint() or DEFAULT_MODEL


def device_from(name: str) -> "torch.device":
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device: expected cpu, cuda, cuda:N, mps, ..., got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this torch build sees no CUDA device; use --device cpu")
    return device


def load_model(model_class, source: str, device: "torch.device", image_size: int | None = None):
    """`model_class.from_pretrained(source, image_size=...)` in eval mode on `device`, or a one-line ValueError."""
    with quiet_transformers():
        try:
            model = _from_pretrained(model_class, source, image_size)
        except ValueError as error:
            if str(error).startswith("image_size="):  # name the option the user gave
                raise ValueError(f"--image-size{str(error).removeprefix('image_size')}") from None
            raise
    return model.to(device).eval()


def computing_in(dtype_name: str, device: "torch.device"):
    """The context the model runs in: no gradients, and autocast for a reduced precision (the
    original's video predictor keeps float32 weights and memories in bfloat16 the same way)."""
    import torch

    from ..precision import resolve_dtype

    dtype = resolve_dtype(dtype_name, device)  # "auto" -> bfloat16 only where native; warns where emulated
    stack = contextlib.ExitStack()
    stack.enter_context(torch.no_grad())
    if dtype != torch.float32:
        stack.enter_context(torch.autocast(device.type, dtype=dtype))
    return stack


def _from_pretrained(model_class, source: str, image_size: int | None):
    path = Path(source).expanduser()
    if path.exists():
        return model_class.from_pretrained(str(path), image_size=image_size)
    if _looks_local(source):
        raise ValueError(f"--model: no such file or folder: {source}")
    with contextlib.suppress(OSError):
        return model_class.from_pretrained(source, local_files_only=True, image_size=image_size)
    if not _hub_reachable():
        raise ValueError(
            f"--model {source}: not in the Hugging Face cache and the Hub cannot be reached (offline); "
            "pass --model PATH to Meta's edgetam.pt or to a converted folder"
        )
    try:
        return model_class.from_pretrained(source, image_size=image_size)
    except OSError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"--model {source}: {first_line}") from None


def _looks_local(source: str) -> bool:
    """Paths the Hub could not hold (a Hub id is `name` or `owner/name`)."""
    return source.endswith(_LOCAL_SUFFIXES) or source.startswith((".", "/", "~")) or source.count("/") > 1 or os.sep in source.replace("/", "")


def _hub_reachable() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def quiet_transformers():
    """The commands print their own summary; transformers' loading bars and notes (e.g. that a
    video checkpoint loads into the image model, which is intended) would bury it."""
    from transformers.utils import logging as transformers_logging

    was_enabled, verbosity = transformers_logging.is_progress_bar_enabled(), transformers_logging.get_verbosity()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if was_enabled:
            transformers_logging.enable_progress_bar()


def processor_for(processor_class, model):
    """`processor_class` (EdgeTamProcessor or EdgeTamVideoProcessor) sized for the model's input
    square: 1024 for the released model, smaller for a model built from a smaller config."""
    return processor_class(image_processor=image_processor_for(model), target_size=_input_side(model))


def image_processor_for(model):
    from ..image_processing import EdgeTamImageProcessor

    side = _input_side(model)
    return EdgeTamImageProcessor(size={"height": side, "width": side}, mask_size={"height": side // 4, "width": side // 4})


def _input_side(model) -> int:
    return model.config.prompt_encoder_config.image_size
