"""The studio's routes: a Starlette app serving the page (static/) and a JSON API; model work runs
in worker threads, a propagation streams its frames as lines of JSON as they are computed.

Every error a person can fix (a bad file, a limit, a prompt outside the image) is a StudioError
answered as {"error": message} and shown on the page; anything else is logged and answered the
same way, and the server goes on serving the other sessions."""

import asyncio
import base64
import contextlib
import json
import logging
import queue
import shutil
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..cli.drawing import OBJECT_COLORS
from .exports import object_overlay_png
from .image_work import ImageWork
from .models import StudioModels
from .sessions import Session, SessionStore, StudioError
from .uploads import Limits, frames_folder, kind_of, open_image, open_video, safe_name, upload_path
from .video_work import VideoWork

logger = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
SWEEP_SECONDS = 30.0
_CHUNK_WAIT_SECONDS = 0.25  # how often a propagation stream looks for a new frame or a gone client


def create_app(models: StudioModels, store: SessionStore, limits: Limits) -> Starlette:
    api = _Api(models, store, limits)

    async def sweep_forever():
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            await run_in_threadpool(store.sweep)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        sweeper = asyncio.create_task(sweep_forever())
        try:
            yield
        finally:
            sweeper.cancel()
            await run_in_threadpool(store.close)

    prefix = "/api/s/{sid}"
    routes = [
        Route("/", lambda request: FileResponse(STATIC_DIR / "index.html")),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/api/info", api.info),
        Route("/api/sessions", api.new_session, methods=["POST"]),
        Route(prefix + "/close", api.close_session, methods=["POST"]),
        Route(prefix + "/upload", api.upload, methods=["POST"]),
        Route(prefix + "/open", api.open, methods=["POST"]),
        Route(prefix + "/image/source", api.image_source),
        Route(prefix + "/image/objects/{obj:int}", api.image_prompt, methods=["PUT"]),
        Route(prefix + "/image/objects/{obj:int}", api.image_remove, methods=["DELETE"]),
        Route(prefix + "/image/objects/{obj:int}/choice", api.image_choose, methods=["PUT"]),
        Route(prefix + "/image/masks.zip", api.download("image", "masks_zip", "application/zip", "masks.zip")),
        Route(prefix + "/image/coco.json", api.download("image", "coco", "application/json", "coco.json")),
        Route(prefix + "/video/frames/{frame:int}", api.video_frame),
        Route(prefix + "/video/overlays/{frame:int}", api.video_overlay),
        Route(prefix + "/video/scores", api.video_scores),
        Route(prefix + "/video/prompts", api.video_prompt, methods=["PUT"]),
        Route(prefix + "/video/objects/{obj:int}", api.video_remove, methods=["DELETE"]),
        Route(prefix + "/video/propagate", api.video_propagate, methods=["POST"]),
        Route(prefix + "/video/cancel", api.video_cancel, methods=["POST"]),
        Route(prefix + "/video/davis.zip", api.download("video", "davis_zip", "application/zip", "masks_davis.zip")),
        Route(prefix + "/video/coco.json", api.download("video", "coco", "application/json", "coco.json")),
        Route(prefix + "/video/overlay", api.video_overlay_video),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={StudioError: _error_response, Exception: _error_response})


async def _error_response(request: Request, error: Exception) -> JSONResponse:
    # StudioError is answered by Starlette's exception middleware as any handled error; other
    # exceptions reach the server-error middleware, which answers with this and logs them.
    if isinstance(error, StudioError):
        return JSONResponse({"error": str(error)}, status_code=error.status)
    logger.exception("studio: %s %s failed", request.method, request.url.path)
    return JSONResponse({"error": f"the server failed on this request ({type(error).__name__}: {error})"}, status_code=500)


class _Api:
    def __init__(self, models: StudioModels, store: SessionStore, limits: Limits):
        self.models, self.store, self.limits = models, store, limits

    async def info(self, request: Request) -> JSONResponse:
        limits = self.limits
        return JSONResponse({
            "models": self.models.description, "bundled": self.models.bundled, "colors": [list(c) for c in OBJECT_COLORS.tolist()],
            "limits": {"upload_mb": limits.max_upload_bytes / 2**20, "seconds": limits.max_seconds, "side": limits.max_side},
        })

    async def new_session(self, request: Request) -> JSONResponse:
        session = await run_in_threadpool(self.store.create)
        return JSONResponse({"id": session.id})

    async def close_session(self, request: Request) -> JSONResponse:
        session = self.store.get(request.path_params["sid"])
        session.last_used = float("-inf")  # removed by the next sweep, once no propagation runs
        if isinstance(session.work, VideoWork):
            session.work.cancel()
        return JSONResponse({})

    async def upload(self, request: Request) -> JSONResponse:
        """The request's body is one file, written as it arrives; over the limit it stops there."""
        session = self.store.get(request.path_params["sid"])
        name = request.query_params.get("name", "")
        into_frames = request.query_params.get("frames") == "1"
        if into_frames and request.query_params.get("reset") == "1":  # the first frame of a newly chosen folder
            shutil.rmtree(frames_folder(session.folder), ignore_errors=True)
        limit = self.limits.max_upload_bytes
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit:
            raise StudioError(f"{safe_name(name)}: {declared / 2**20:.0f} MB; uploads are limited to {limit / 2**20:g} MB (--max-upload-mb)", 413)
        path = upload_path(session.folder, name, into_frames)
        received = 0
        with open(path, "wb") as file:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    file.close()
                    path.unlink()
                    raise StudioError(f"{path.name}: more than {limit / 2**20:g} MB; uploads are limited to that (--max-upload-mb)", 413)
                file.write(chunk)
        return JSONResponse({"name": path.name, "bytes": received})

    async def open(self, request: Request) -> JSONResponse:
        """Opens the sample image or clip, the uploaded file `name`, or the uploaded frames."""
        session = self.store.get(request.path_params["sid"])
        body = await _json(request)
        source = body.get("source")

        def opened() -> dict:
            with session.lock:
                if session.work is not None:
                    session.work.close()
                    session.work = None
                session.work = self._open(session, source, body.get("name", ""))
                return session.work.describe()

        return JSONResponse(await run_in_threadpool(opened))

    def _open(self, session: Session, source, name: str):
        from ..cli.demo import SAMPLE_CLIP_FPS
        from ..cli.media import Video
        from ..sample_media import render_sample_clip, render_sample_image

        if source == "sample-image":
            return ImageWork(self.models, render_sample_image(), "sample.png")
        if source == "sample-clip":
            frames = render_sample_clip()
            return VideoWork(self.models, Video(frames, [f"{t:05d}" for t in range(len(frames))], SAMPLE_CLIP_FPS), "sample clip", session.folder)
        if source == "frames":
            path = frames_folder(session.folder)
        elif source == "upload":
            path = upload_path(session.folder, name, into_frames=False)
        else:
            raise StudioError(f"source: expected sample-image, sample-clip, upload or frames, got {source!r}")
        if not path.exists():
            raise StudioError(f"{path.name}: nothing was uploaded under this name")
        if kind_of(path) == "image":
            return ImageWork(self.models, open_image(path, self.limits), path.name)
        return VideoWork(self.models, open_video(path, self.limits), path.name, session.folder)

    # ---------------------------------------------------------------- images

    async def image_source(self, request: Request) -> Response:
        data = await self._with_work(request, "image", lambda work: work.source_png(), locked=False)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    async def image_prompt(self, request: Request) -> JSONResponse:
        body = await _json(request)
        points, box = _prompts(body)
        multimask = bool(body.get("multimask", True))

        def run(work: ImageWork) -> dict:
            started = time.perf_counter()
            found = work.predict(request.path_params["obj"], points, box, multimask)
            prediction = found.prediction
            candidates = [_b64(object_overlay_png(mask, request.path_params["obj"])) for mask in prediction.candidates]
            return {
                "candidates": candidates, "iou_scores": prediction.iou_scores, "chosen": found.chosen,
                "object_score_logit": prediction.object_score_logit, "server_ms": 1000 * (time.perf_counter() - started),
            }

        return JSONResponse(await self._with_work(request, "image", run))

    async def image_choose(self, request: Request) -> JSONResponse:
        index = _integer(await _json(request), "index")
        return JSONResponse(await self._with_work(request, "image", lambda work: {"chosen": work.choose(request.path_params["obj"], index).chosen}))

    async def image_remove(self, request: Request) -> JSONResponse:
        return JSONResponse(await self._with_work(request, "image", lambda work: work.remove(request.path_params["obj"]) or {}))

    # ---------------------------------------------------------------- videos

    async def video_frame(self, request: Request) -> Response:
        data = await self._with_work(request, "video", lambda work: work.frame_jpeg(request.path_params["frame"]), locked=False)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    async def video_overlay(self, request: Request) -> Response:
        data = await self._with_work(request, "video", lambda work: work.overlay(request.path_params["frame"]), locked=False)
        return Response(status_code=204) if data is None else Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    async def video_scores(self, request: Request) -> JSONResponse:
        scores = await self._with_work(request, "video", lambda work: dict(work.scores), locked=False)
        return JSONResponse({str(frame): frame_scores for frame, frame_scores in scores.items()})

    async def video_prompt(self, request: Request) -> JSONResponse:
        body = await _json(request)
        points, box = _prompts(body)
        frame_idx, obj_id = _integer(body, "frame"), _integer(body, "obj")

        def run(work: VideoWork) -> dict:
            started = time.perf_counter()
            result = work.prompt(frame_idx, obj_id, points, box)
            return {**result, "server_ms": 1000 * (time.perf_counter() - started)}

        return JSONResponse(await self._with_work(request, "video", run))

    async def video_remove(self, request: Request) -> JSONResponse:
        changed = await self._with_work(request, "video", lambda work: work.remove_object(request.path_params["obj"]))
        return JSONResponse({"changed_frames": changed})

    async def video_cancel(self, request: Request) -> JSONResponse:
        await self._with_work(request, "video", lambda work: work.cancel(), locked=False)
        return JSONResponse({})

    async def video_propagate(self, request: Request) -> StreamingResponse:
        """Lines of JSON, one per frame as it is computed ({"type": "frame", ...}), then {"type": "end"}."""
        body = await _json(request)
        start = body.get("start")
        if start is not None:
            start = _integer(body, "start")
        job = await self._with_work(request, "video", lambda work: work.propagate(str(body.get("direction", "forward")), start))

        async def lines():
            try:
                while True:
                    try:
                        event = await asyncio.to_thread(job.events.get, timeout=_CHUNK_WAIT_SECONDS)
                    except queue.Empty:  # nothing yet: look again (and notice a client that left)
                        continue
                    yield json.dumps(event) + "\n"
                    if event["type"] == "end":
                        return
            finally:
                job.cancel()  # the page went away or the stream ended: nothing waits for more frames

        return StreamingResponse(lines(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"})

    async def video_overlay_video(self, request: Request) -> FileResponse:
        path = await self._with_work(request, "video", lambda work: work.overlay_video())
        return FileResponse(path, filename=path.name)

    # ---------------------------------------------------------------- shared

    def download(self, kind: str, method: str, media_type: str, filename: str):
        async def route(request: Request) -> Response:
            data = await self._with_work(request, kind, lambda work: getattr(work, method)())
            return Response(data, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})

        return route

    async def _with_work(self, request: Request, kind: str, action, locked: bool = True):
        """`action(work)` in a worker thread, on the session's open image or video."""
        session = self.store.get(request.path_params["sid"])

        def run():
            work = session.work
            if work is None or work.kind != kind:
                raise StudioError(f"open {'an image' if kind == 'image' else 'a video'} first")
            if not locked:
                return action(work)
            with session.lock:
                return action(work)

        return await run_in_threadpool(run)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise StudioError("the request's body is not JSON") from None
    if not isinstance(body, dict):
        raise StudioError("the request's body must be a JSON object")
    return body


def _integer(body: dict, name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise StudioError(f"{name}: expected an integer, got {value!r}")
    return value


def _prompts(body: dict) -> tuple[list, list | None]:
    """`points` [[x, y, label], ...] (label 1 or 0) and `box` [x0, y0, x1, y1] or null, checked."""
    points, box = body.get("points") or [], body.get("box")
    if not isinstance(points, list) or not all(
        isinstance(p, list) and len(p) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p) and p[2] in (0, 1)
        for p in points
    ):
        raise StudioError(f"points: expected [[x, y, label], ...] with label 1 (keep) or 0 (exclude), got {points!r}")
    if box is not None and not (
        isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
    ):
        raise StudioError(f"box: expected [x0, y0, x1, y1], got {box!r}")
    return [[float(x), float(y), int(label)] for x, y, label in points], box and [float(v) for v in box]
