"""Serving the studio from a thread of the calling process, on a free port of 127.0.0.1: what the
browser tests and the latency benchmark drive (the command line serves it with `uvicorn.run`)."""

import threading
import time

import uvicorn

from .app import create_app
from .models import StudioModels
from .sessions import SessionStore
from .uploads import Limits


class BackgroundStudio:
    def __init__(self, models: StudioModels, store: SessionStore, limits: Limits, start_timeout: float = 60.0):
        self.models, self.store = models, store
        self.server = uvicorn.Server(uvicorn.Config(create_app(models, store, limits), host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="studio-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + start_timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the studio's server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        """Stops serving; the app's shutdown removes every session and its folder."""
        self.server.should_exit = True
        self.thread.join(timeout=30)
