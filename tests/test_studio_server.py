"""The studio's server without a browser: names and paths it will not follow out of a session's
folder, bounded and expiring sessions, limits, bad requests answered with a message, and the
command line's safe defaults."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the studio extra is not installed")  # make test installs it

from edgetam_hf.cli import build_parser  # noqa: E402
from edgetam_hf.sample_media import render_sample_frame  # noqa: E402
from edgetam_hf.studio.sessions import SessionStore, StudioError  # noqa: E402
from edgetam_hf.studio.uploads import Limits, open_video, safe_name, upload_path  # noqa: E402
from test_studio_browser import studio, write_clip  # noqa: E402, F401  (the served studio fixture)

TESTS_DIR = Path(__file__).resolve().parent


def call(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def new_session(studio) -> str:
    status, body = call(f"{studio.url}/api/sessions", "POST", b"")
    assert status == 200
    return json.loads(body)["id"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("../../etc/passwd", "passwd"), ("..", "upload"), (".hidden", "hidden"), ("a/b\\c d.png", "c_d.png"), ("", "upload"), ("ü.mp4", "_.mp4")],
)
def test_safe_names_stay_in_the_folder(tmp_path, name, expected):
    assert safe_name(name) == expected
    assert upload_path(tmp_path, name, into_frames=False).parent == tmp_path / "uploads"


def test_uploads_and_static_files_never_leave_their_folders(studio):
    session = new_session(studio)
    status, body = call(f"{studio.url}/api/s/{session}/upload?name=..%2F..%2Fescape.png", "POST", b"data")
    assert status == 200 and json.loads(body)["name"] == "escape.png"
    assert (studio.store.root / session / "uploads" / "escape.png").is_file()
    assert not list(studio.store.root.parent.glob("escape.png"))
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py"):
        status, body = call(studio.url + path)
        assert status == 404 and b"create_app" not in body, path


def test_bad_requests_get_a_message(studio):
    session = new_session(studio)
    status, body = call(f"{studio.url}/api/s/nosuchsession/open", "POST", b"{}")
    assert status == 404 and "reload the page" in json.loads(body)["error"]
    status, body = call(f"{studio.url}/api/s/{session}/video/prompts", "PUT", b'{"frame": 0, "obj": 1, "points": [[5, 5, 1]]}')
    assert status == 400 and "open a video first" in json.loads(body)["error"]
    call(f"{studio.url}/api/s/{session}/open", "POST", b'{"source": "sample-clip"}')
    status, body = call(f"{studio.url}/api/s/{session}/video/prompts", "PUT", json.dumps({"frame": 0, "obj": 1, "points": "x"}).encode())
    assert status == 400 and json.loads(body)["error"].startswith("points:")
    status, body = call(f"{studio.url}/api/s/{session}/video/prompts", "PUT", json.dumps({"frame": 99, "obj": 1, "points": [[5, 5, 1]]}).encode())
    assert status == 400 and "frames 0 to 15" in json.loads(body)["error"]
    status, body = call(f"{studio.url}/api/s/{session}/open", "POST", b"not json")
    assert status == 400 and "not JSON" in json.loads(body)["error"]
    status, body = call(f"{studio.url}/api/s/{session}/video/propagate", "POST", b'{"direction": "forward"}')
    assert status == 400 and "add a click or a box" in json.loads(body)["error"]


def test_sessions_are_bounded_and_expire_with_their_folders(tmp_path):
    store = SessionStore(max_sessions=2, idle_seconds=60, root=tmp_path)
    first, second = store.create(), store.create()
    with pytest.raises(StudioError, match="--max-sessions"):
        store.create()
    first.last_used -= 61  # idle past the limit
    assert store.sweep() == [first.id]
    assert not first.folder.exists() and second.folder.exists()
    with pytest.raises(StudioError, match="expired"):
        store.get(first.id)
    third = store.create()  # the expired one's place is free again
    store.close()
    assert not store.root.exists() and not third.folder.exists()


def test_videos_longer_than_the_limit_are_refused(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", 24)  # 3 s at 8 fps
    with pytest.raises(StudioError, match="--max-seconds"):
        open_video(clip, Limits(max_seconds=2))
    frames = tmp_path / "frames"
    frames.mkdir()
    render_sample_frame(0).save(frames / "0.png")
    with pytest.raises(StudioError, match="--max-side"):
        open_video(frames, Limits(max_side=100))
    reader = open_video(clip, Limits())
    assert len(reader) == 24
    reader.close()


def test_command_line_defaults_are_local_and_bundled():
    args = build_parser(["studio"]).parse_args(["studio"])
    assert args.host == "127.0.0.1" and args.model is None and args.max_sessions >= 1


@pytest.mark.slow
def test_the_command_serves_the_page_and_says_which_models(tmp_path):
    with socket.socket() as probe:  # a port free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = tmp_path / "site"  # the tests' torchvision shim in the child too, as tests/test_cli.py does
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import sys\nsys.path.insert(0, {str(TESTS_DIR)!r})\nimport _torchvision_shim\n_torchvision_shim.install()\n")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "edgetam_hf", "studio", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=environment)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "the studio did not start"
            try:
                status, page = call(f"http://127.0.0.1:{port}/")
                break
            except urllib.error.URLError:
                time.sleep(0.5)
        assert status == 200 and b"EdgeTAM studio" in page
        info = json.loads(call(f"http://127.0.0.1:{port}/api/info")[1])
        assert info["bundled"] and "rendered shapes only" in info["models"]
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=60)[0]
    assert f"http://127.0.0.1:{port}/" in output
