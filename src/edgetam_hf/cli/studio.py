"""`edgetam-hf studio`: the web app (docs/studio.md). Listens on 127.0.0.1 unless --host says
otherwise; without --model it serves the tiny models bundled with the package."""

import logging

from .models import DTYPE_NAMES

DEFAULT_PORT = 7860  # Gradio's, which people who run Spaces locally expect


def add_arguments(studio) -> None:
    studio.description = (
        "A local web app: open an image, a video (.mp4 with PyAV, a folder of frames) or the bundled samples, "
        "click objects (right click or shift: background; drag: a box), propagate through the video, correct "
        "on any frame, download PNG / DAVIS masks, COCO RLE JSON and an overlay video. Without --model it runs "
        "the tiny models bundled with the package (rendered shapes only, and the page says so)."
    )
    studio.add_argument("--model", default=None, help="a converted folder, Meta's edgetam.pt, a Hub id or an `edgetam-hf export` folder of a video model "
                        "(default: the bundled tiny models)")
    studio.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps, ... (default: cuda when available)")
    studio.add_argument("--dtype", choices=DTYPE_NAMES, default="float32", help="compute dtype (default float32; others under torch.autocast)")
    studio.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    studio.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    studio.add_argument("--max-sessions", type=int, default=8, help="pages open at once (default 8)")
    studio.add_argument("--idle-minutes", type=float, default=30.0, help="a session idle this long is removed with its files (default 30)")
    studio.add_argument("--max-upload-mb", type=float, default=1024.0, help="largest upload in MB (default 1024)")
    studio.add_argument("--max-seconds", type=float, default=600.0, help="longest video in seconds (default 600)")
    studio.add_argument("--max-side", type=int, default=4096, help="longest side of an image or frame in pixels (default 4096)")
    studio.set_defaults(run=run_studio)


def run_studio(args) -> int:
    try:
        import uvicorn

        from ..studio.app import create_app
    except ImportError as error:
        raise ValueError(f'the studio needs its web stack ({error.name} is missing): pip install -e ".[studio]"') from None
    from ..studio.models import load_studio_models
    from ..studio.sessions import SessionStore
    from ..studio.uploads import Limits
    from .models import device_from

    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_seconds=args.max_seconds, max_side=args.max_side)
    models = load_studio_models(args.model, device_from(args.device), args.dtype)
    store = SessionStore(max_sessions=args.max_sessions, idle_seconds=args.idle_minutes * 60)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(models.description)
    print(f"studio: http://{args.host}:{args.port}/ (Ctrl-C stops it)")
    uvicorn.run(create_app(models, store, limits), host=args.host, port=args.port, log_level="warning")
    return 0
