"""Sessions of the studio: one per open page, each with its own temporary folder (uploads,
exports), bounded in number and removed with their folder when idle too long."""

import logging
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)


class StudioError(ValueError):
    """A problem the page shows to the person as it is (bad file, limit, wrong order); `status`
    is the HTTP status the route answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Session:
    id: str
    folder: Path  # everything the session writes lives here, and goes with it
    last_used: float = field(default_factory=time.monotonic)
    work: object = None  # ImageWork or VideoWork, whichever is open
    lock: threading.Lock = field(default_factory=threading.Lock)  # one request changes the work at a time

    def touch(self) -> None:
        self.last_used = time.monotonic()

    @property
    def busy(self) -> bool:
        """A propagation is running: the session is in use even with no request open."""
        return bool(getattr(self.work, "running", False))

    def close(self) -> None:
        if self.work is not None:
            self.work.close()
        self.work = None
        shutil.rmtree(self.folder, ignore_errors=True)


class SessionStore:
    """At most `max_sessions` sessions; a session idle for `idle_seconds` (and not propagating)
    is removed, its folder deleted, by `sweep`, which runs before every new session and on a timer."""

    def __init__(self, max_sessions: int = 8, idle_seconds: float = 1800.0, root: Path | None = None):
        if max_sessions < 1:
            raise ValueError(f"--max-sessions: expected 1 or more, got {max_sessions}")
        if idle_seconds <= 0:
            raise ValueError(f"--idle-minutes: expected more than 0, got {idle_seconds / 60:g}")
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        # One folder per studio process, so that two studios on a machine never share files.
        self.root = Path(tempfile.mkdtemp(prefix="edgetam-studio-", dir=root))
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> Session:
        self.sweep()
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                raise StudioError(
                    f"the studio already holds {self.max_sessions} sessions (--max-sessions); close another tab "
                    f"or wait until one has been idle for {self.idle_seconds / 60:g} minutes",
                    status=503,
                )
            session_id = secrets.token_urlsafe(16)
            folder = self.root / session_id
            folder.mkdir()
            session = self._sessions[session_id] = Session(session_id, folder)
        return session

    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise StudioError("this session has expired or never existed; reload the page to start a new one", status=404)
        session.touch()
        return session

    def sweep(self) -> list[str]:
        """Removes the sessions idle too long; returns their ids."""
        now = time.monotonic()
        with self._lock:
            expired = [s for s in self._sessions.values() if now - s.last_used > self.idle_seconds and not s.busy]
            for session in expired:
                del self._sessions[session.id]
        for session in expired:
            logger.info("session %s expired after %.0f s idle", session.id, now - session.last_used)
            session.close()
        return [session.id for session in expired]

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()
        shutil.rmtree(self.root, ignore_errors=True)
