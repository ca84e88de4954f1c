"""The studio in a real browser: Playwright drives Debian's headless chromium against a studio
served in this process on the bundled tiny models. The tests click, drag, propagate, correct,
cancel and download as a person would, and check every downloaded mask against the package's own
API run on the prompts the page sent (float32 tolerance of `edgetam_hf.numerics`: a pixel may
differ only where the reference logit is within rounding of 0, or of another object's).

Screenshots of each view go to $EDGETAM_STUDIO_SCREENSHOTS when set (docs/images for the docs:
`EDGETAM_STUDIO_SCREENSHOTS=docs/images pytest tests/test_studio_browser.py`), else to a temporary folder.
"""

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette", reason="the studio extra is not installed")  # make test installs it
from playwright.sync_api import sync_playwright  # noqa: E402

from edgetam_hf.cli.media import OverlayVideoWriter, label_map  # noqa: E402
from edgetam_hf.masks_and_boxes import rle_to_mask  # noqa: E402
from edgetam_hf.numerics import float32_tolerance  # noqa: E402
from edgetam_hf.sample_media import SAMPLE_BOXES, render_sample_clip, render_sample_frame, render_sample_image  # noqa: E402
from edgetam_hf.studio.models import load_studio_models  # noqa: E402
from edgetam_hf.studio.serving import BackgroundStudio  # noqa: E402
from edgetam_hf.studio.sessions import SessionStore  # noqa: E402
from edgetam_hf.studio.uploads import Limits  # noqa: E402

pytestmark = pytest.mark.slow
TIMEOUT_MS = 120_000  # generous: CI shares its cores
STUDIO_LIMITS = Limits(max_upload_bytes=3 * 2**20, max_seconds=60, max_side=1024)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    store = SessionStore(max_sessions=4, idle_seconds=600, root=tmp_path_factory.mktemp("studio"))
    served = BackgroundStudio(load_studio_models(None, torch.device("cpu")), store, STUDIO_LIMITS)
    yield served
    served.stop()
    assert not served.store.root.exists(), "the studio left its session folders behind"


def chromium_path() -> str:
    path = os.environ.get("EDGETAM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:  # CI installs it (.ci/run); a missing browser is a failure, not a skip
        pytest.fail("chromium is not installed: apt-get install chromium (or set EDGETAM_CHROMIUM to a Chromium binary)")
    return path


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path())
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("EDGETAM_STUDIO_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Page:
    """One browser tab on the studio, with what it sent the server recorded in order."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page(viewport={"width": 1280, "height": 760}, accept_downloads=True)
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.sent: list[tuple[str, str, dict]] = []  # (method, path after the session, body)
        self.page.on("request", self._record)
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready=true]")

    def _record(self, request) -> None:
        path = request.url.split("/api/s/", 1)[-1].split("/", 1)[-1] if "/api/s/" in request.url else ""
        if path.startswith(("image/objects", "video/prompts", "video/propagate", "video/objects")):
            self.sent.append((request.method, path, json.loads(request.post_data or "{}")))

    def open(self, button: str, kind: str) -> None:
        self.page.click(button)
        self.page.wait_for_selector(f"body[data-media={kind}]")

    def at(self, x: float, y: float) -> tuple[float, float]:
        """Page coordinates of media pixel (x, y) (the canvas may be scaled)."""
        box = self.page.locator("#stage").bounding_box()
        width = self.page.eval_on_selector("#stage", "canvas => canvas.width")
        scale = box["width"] / width
        return box["x"] + (x + 0.5) * scale, box["y"] + (y + 0.5) * scale

    def results(self) -> int:
        return self.page.evaluate("window.studioTimings.length")

    def click(self, x: float, y: float, negative: bool = False) -> None:
        count = self.results()
        if negative:
            self.page.mouse.click(*self.at(x, y), button="right")
        else:
            self.page.mouse.click(*self.at(x, y))
        self.wait_results(count + 1)

    def drag(self, box) -> None:
        count = self.results()
        self.page.mouse.move(*self.at(box[0], box[1]))
        self.page.mouse.down()
        self.page.mouse.move(*self.at(box[2], box[3]), steps=8)
        self.page.mouse.up()
        self.wait_results(count + 1)

    def key(self, key: str, expect_result: bool = False) -> None:
        count = self.results()
        self.page.keyboard.press(key)
        if expect_result:
            self.wait_results(count + 1)

    def wait_results(self, count: int) -> None:
        self.page.wait_for_function(f"window.studioTimings.length >= {count}")

    def download(self, path: str) -> bytes:
        with self.page.expect_download() as info:
            self.page.click(f'a[data-download="{path}"]')
        return Path(info.value.path()).read_bytes()

    def propagate(self, key: str) -> str:
        """Presses the shortcut, waits for the run to end; returns how it ended."""
        self.page.evaluate("document.getElementById('progress-label').removeAttribute('data-state')")
        self.page.keyboard.press(key)
        self.page.wait_for_selector("#progress-label[data-state]")
        return self.page.get_attribute("#progress-label", "data-state")

    def message(self) -> str:
        self.page.wait_for_selector("#message:not([hidden])")
        return self.page.inner_text("#message")

    def close(self) -> None:
        assert not self.errors, f"the page raised: {self.errors}"
        self.page.close()


@pytest.fixture
def page(browser, studio):
    opened = Page(browser, studio.url)
    yield opened
    opened.close()


# ---------------------------------------------------------------------- references: the package's API


def image_reference(models, image: Image.Image, body: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(candidates, height, width) logits and the predicted IoUs, as docs/getting_started.md encodes
    an image once and decodes a prompt with `image_embeddings=`."""
    processor, model = models.image_processor, models.image_model
    inputs = processor(images=image)
    prompts = {}
    if body["points"]:
        prompts.update(input_points=[[[p[:2] for p in body["points"]]]], input_labels=[[[p[2] for p in body["points"]]]])
    if body["box"] is not None:
        prompts["input_boxes"] = [[body["box"]]]
    encoded = processor(original_sizes=inputs["original_sizes"], **prompts)
    with torch.no_grad():
        embeddings = model.get_image_embeddings(inputs["pixel_values"])
        outputs = model(image_embeddings=embeddings, multimask_output=body["multimask"], **{name: encoded[name] for name in prompts})
    logits = processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"], binarize=False)[0][0]
    return logits, outputs.iou_scores[0, 0]


def assert_mask_matches(found: np.ndarray, logits: torch.Tensor, what: str) -> None:
    """A pixel may differ only where the reference logit is within float32 rounding of 0."""
    differ = torch.from_numpy(found) != (logits > 0)
    certain = logits.abs() > float32_tolerance(logits)
    assert not (differ & certain).any(), f"{what}: {int((differ & certain).sum())} pixels differ from the package's API"
    assert found.any(), f"{what}: the mask is empty"


def assert_labels_match(found: np.ndarray, logits: torch.Tensor, obj_ids: list[int], what: str) -> None:
    """A label map against (objects, height, width) reference logits: a pixel may differ only where
    an object's logit is within rounding of 0 or of the winning object's."""
    tolerance = float32_tolerance(logits)
    expected = torch.from_numpy(label_map(logits, obj_ids))
    ambiguous = (logits.abs() <= tolerance).any(dim=0)
    if len(obj_ids) > 1:
        top = logits.topk(2, dim=0).values
        ambiguous |= (top[0] - top[1]) <= tolerance
    differ = (torch.from_numpy(np.array(found)) != expected) & ~ambiguous
    assert not differ.any(), f"{what}: {int(differ.sum())} pixels differ from the package's API"


class VideoReplay:
    """Replays what the page sent on a session of the package's own, keeping each frame's latest
    result: prompts as `add_inputs_to_inference_session` + `model(session, frame_idx=)`,
    propagations as `propagate_in_video_iterator` (stopped after `frames_done` frames when given)."""

    def __init__(self, models, video):
        self.models = models
        self.session = models.video_processor.init_video_session(video=video, video_storage_device="cpu", bounded=False)
        self.latest: dict[int, object] = {}

    def run(self, sent, frames_done: list[int] | None = None) -> None:
        model, processor = self.models.video_model, self.models.video_processor
        runs = iter(frames_done or [])
        with torch.no_grad():
            for method, path, body in sent:
                if path == "video/prompts":
                    points = body["points"]
                    processor.add_inputs_to_inference_session(
                        self.session, frame_idx=body["frame"], obj_ids=body["obj"],
                        input_points=[[[p[:2] for p in points]]] if points else None,
                        input_labels=[[[p[2] for p in points]]] if points else None,
                        input_boxes=[[body["box"]]] if body["box"] is not None else None,
                    )
                    self._keep(model(self.session, frame_idx=body["frame"]))
                elif path == "video/propagate":
                    limit = next(runs, None)
                    for reverse in {"forward": (False,), "backward": (True,), "both": (False, True)}[body["direction"]]:
                        for number, output in enumerate(model.propagate_in_video_iterator(self.session, start_frame_idx=body["start"], reverse=reverse)):
                            if limit is not None and number >= limit:
                                break
                            self._keep(output)
                else:
                    raise AssertionError(f"not replayed: {method} {path}")

    def _keep(self, output) -> None:
        height, width = self.session.video_height, self.session.video_width
        logits = self.models.video_processor.post_process_masks([output.pred_masks], [[height, width]], binarize=False)[0][:, 0]
        self.latest[output.frame_idx] = (logits, list(output.object_ids))

    def check_davis(self, archive: bytes, names: list[str]) -> None:
        with zipfile.ZipFile(io.BytesIO(archive)) as masks:
            stored = {name: np.asarray(Image.open(io.BytesIO(masks.read(name)))) for name in masks.namelist()}
        assert sorted(stored) == sorted(f"{names[t]}.png" for t in self.latest)
        for frame_idx, (logits, obj_ids) in self.latest.items():
            assert_labels_match(stored[f"{names[frame_idx]}.png"], logits, obj_ids, f"frame {frame_idx}")


def coco_masks(document: bytes) -> dict[tuple[int, int], np.ndarray]:
    parsed = json.loads(document)
    return {(a["image_id"], a["object_id"]): rle_to_mask(a["segmentation"]).numpy() for a in parsed["annotations"]}


# ---------------------------------------------------------------------- images


def test_image_clicks_box_candidates_undo_clear_download(page, studio, screenshots):
    page.open("#sample-image", "image")
    disc_centre, background = (200, 170), (40, 40)
    page.click(*disc_centre)
    assert page.page.locator("#candidates button").count() == 3
    page.click(*background, negative=True)  # right click: exclude
    page.key("2")  # the second candidate
    page.page.wait_for_selector('#candidates button[data-candidate="1"].chosen')
    page.key("n")
    page.drag(SAMPLE_BOXES[1])  # a box around the rectangle: object 2
    page.key("m")  # one mask instead of three
    page.page.wait_for_function("document.querySelectorAll('#candidates button').length === 1")
    page.click(470, 335)
    page.key("u", expect_result=True)  # undo the click: the box alone again
    page.key("n")
    page.click(430, 150)  # object 3 on the triangle, then cleared
    page.key("c", expect_result=True)
    page.page.screenshot(path=str(screenshots / "studio_image.png"))

    archive = zipfile.ZipFile(io.BytesIO(page.download("/image/masks.zip")))
    assert sorted(archive.namelist()) == ["mask_1.png", "mask_2.png"]
    coco = coco_masks(page.download("/image/coco.json"))
    assert sorted(coco) == [(1, 1), (1, 2)]
    last_sent = {}
    for method, path, body in page.sent:
        if method == "PUT" and not path.endswith("/choice"):
            last_sent[int(path.split("/")[2])] = body
    image = render_sample_image()
    for obj_id, chosen in ((1, 1), (2, None)):
        logits, iou_scores = image_reference(studio.models, image, last_sent[obj_id])
        chosen = int(iou_scores.argmax()) if chosen is None else chosen
        png = np.asarray(Image.open(archive.open(f"mask_{obj_id}.png"))) > 0
        assert_mask_matches(png, logits[chosen], f"mask_{obj_id}.png")
        assert_mask_matches(coco[(1, obj_id)], logits[chosen], f"COCO object {obj_id}")
    assert last_sent[2]["box"] is not None and last_sent[2]["points"] == [] and last_sent[2]["multimask"] is False
    assert [p[2] for p in last_sent[1]["points"]] == [1, 0]


# ---------------------------------------------------------------------- videos


def test_video_track_correct_remove_download(page, studio, screenshots):
    page.open("#sample-clip", "video")
    page.click(200, 170)  # the disc on frame 0: object 1
    page.key("n")
    page.drag(SAMPLE_BOXES[1])  # the rectangle: object 2
    assert page.propagate("f") == "done"
    assert page.page.inner_text("#progress-label").startswith("tracked 16 / 16 frames")
    # A correction on frame 8 (the slider, then the arrows), tracked on from there.
    page.page.locator("#frame-slider").fill("6")
    page.page.locator("#stage").focus()
    page.key("ArrowRight")
    page.key("ArrowRight")
    page.page.wait_for_selector("#frame-label:text('frame 8 / 15')")
    page.key("[")  # back to object 1
    page.click(120, 120, negative=True)
    page.click(280, 250)
    assert page.propagate("f") == "done"
    page.page.locator("#frame-slider").fill("8")
    page.page.wait_for_selector("#frame-label:text('frame 8 / 15')")
    assert page.propagate("b") == "done"  # and backward from the correction
    scores = page.page.inner_text("#objects")
    assert "object 1" in scores and "object 2" in scores and "score" in scores  # each object's score on the frame
    page.page.screenshot(path=str(screenshots / "studio_video_corrected.png"))

    names = [f"{t:05d}" for t in range(16)]
    replay = VideoReplay(studio.models, render_sample_clip())
    replay.run(page.sent)
    replay.check_davis(page.download("/video/davis.zip"), names)
    coco = coco_masks(page.download("/video/coco.json"))
    for frame_idx, (logits, obj_ids) in replay.latest.items():
        expected = label_map(logits, obj_ids)
        for obj_id in obj_ids:
            np.testing.assert_array_equal(coco[(frame_idx, obj_id)], expected == obj_id)  # the DAVIS maps, object by object

    overlay = page.download("/video/overlay")
    import av

    with av.open(io.BytesIO(overlay)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 16

    page.key("Delete")  # remove object 1: it leaves every frame and every download
    page.page.wait_for_function("document.querySelectorAll('#objects li').length === 1")
    with zipfile.ZipFile(io.BytesIO(page.download("/video/davis.zip"))) as masks:
        values = set().union(*(np.unique(np.asarray(Image.open(masks.open(name)))).tolist() for name in masks.namelist()))
    assert 1 not in values and 2 in values


def write_clip(path: Path, num_frames: int, size=(320, 240)) -> Path:
    """The sample clip's motion over `num_frames`, scaled down, as an .mp4 (PyAV)."""
    with OverlayVideoWriter(path.with_suffix(""), 8.0, size) as writer:
        for t in range(num_frames):
            writer.add(render_sample_frame(t % 16).resize(size))
    assert writer.path.suffix == ".mp4"
    return writer.path


def test_video_upload_ten_objects_cancel(page, studio, tmp_path, screenshots):
    clip = write_clip(tmp_path / "shapes.mp4", 96)
    page.page.set_input_files("#open-file", str(clip))
    page.page.wait_for_selector("body[data-media=video]")
    assert "96 frames" in page.page.inner_text("#media-name")
    clicks = [(100, 70), (100, 100), (60, 200), (215, 60), (215, 85), (240, 200), (20, 20), (300, 20), (20, 220), (300, 220)]
    for number, (x, y) in enumerate(clicks):
        if number:
            page.key("n")
        page.click(x, y)
    assert page.page.locator("#objects li").count() == 10
    # Cancel as soon as the first tracked frame has been shown.
    page.page.evaluate("document.getElementById('progress-label').removeAttribute('data-state')")
    page.page.keyboard.press("f")
    page.page.wait_for_function("document.getElementById('progress').value >= 1")
    page.page.keyboard.press("Escape")
    page.page.wait_for_selector("#progress-label[data-state]")
    assert page.page.get_attribute("#progress-label", "data-state") == "cancelled"
    label = page.page.inner_text("#progress-label")  # "cancelled after N / 96 frames"
    done = int(label.split("after ")[1].split(" /")[0])
    assert 1 <= done < 96
    page.page.screenshot(path=str(screenshots / "studio_video_cancelled.png"))

    from edgetam_hf.video.frame_source import open_frames

    reader = open_frames(clip)
    replay = VideoReplay(studio.models, reader)
    replay.run(page.sent, frames_done=[done])
    replay.check_davis(page.download("/video/davis.zip"), reader.names)
    assert all(len(obj_ids) == 10 for _, obj_ids in replay.latest.values())
    reader.close()


def test_frame_folder_and_bad_files(page, studio, tmp_path, screenshots):
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(3):
        render_sample_frame(t).resize((160, 120)).save(folder / f"{t}.png")
    page.page.set_input_files("#open-folder", str(folder))
    page.page.wait_for_selector("body[data-media=video]")
    assert "3 frames" in page.page.inner_text("#media-name")

    good = write_clip(tmp_path / "good.mp4", 24)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[:600])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    too_large = tmp_path / "large.png"
    too_large.write_bytes(b"0" * (STUDIO_LIMITS.max_upload_bytes + 1))
    notes = tmp_path / "notes.txt"
    notes.write_text("not media")
    huge = tmp_path / "huge.png"
    Image.new("RGB", (STUDIO_LIMITS.max_side + 1, 8)).save(huge)
    expected = {truncated: "truncated.mp4", corrupt: "cannot be read as an image", too_large: "uploads are limited",
                notes: "not a file the studio opens", huge: "pixels a side"}
    for bad, words in expected.items():
        page.page.evaluate("document.getElementById('message').hidden = true")
        page.page.set_input_files("#open-file", str(bad))
        message = page.message()
        assert words in message and "/tmp" not in message and str(tmp_path) not in message, message
        if bad == truncated:
            page.page.screenshot(path=str(screenshots / "studio_error.png"))
    page.open("#sample-image", "image")  # the server went on serving
    page.click(200, 170)
    assert page.page.locator("#message").is_hidden()
