"""The studio on an `edgetam-hf export` folder (onnxruntime): the same routes, with the masks
checked against `OnnxImagePredictor` and `OnnxVideoTracker` run on the same prompts. Driven over
HTTP (the page is the same one tests/test_studio_browser.py drives)."""

import io
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette", reason="the studio extra is not installed")  # make test installs it
pytest.importorskip("onnxruntime")

from edgetam_hf.onnx import OnnxImagePredictor, OnnxVideoTracker  # noqa: E402
from edgetam_hf.onnx.export import export_onnx  # noqa: E402
from edgetam_hf.sample_media import SAMPLE_BOXES, render_sample_clip, render_sample_image  # noqa: E402
from edgetam_hf.studio.models import BUNDLED_VIDEO_MODEL, load_studio_models  # noqa: E402
from edgetam_hf.studio.serving import BackgroundStudio  # noqa: E402
from edgetam_hf.studio.sessions import SessionStore  # noqa: E402
from test_studio_browser import STUDIO_LIMITS, assert_labels_match, assert_mask_matches  # noqa: E402
from test_studio_server import call, new_session  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def export_folder(tmp_path_factory):
    """The bundled tiny video model exported once (image and video graphs; the slow step)."""
    from edgetam_hf.modeling_video import EdgeTamVideoModel

    model = EdgeTamVideoModel.from_pretrained(str(BUNDLED_VIDEO_MODEL)).eval()
    return export_onnx(model, tmp_path_factory.mktemp("exports") / "tiny-onnx")


@pytest.fixture(scope="module")
def onnx_studio(export_folder, tmp_path_factory):
    models = load_studio_models(str(export_folder), torch.device("cpu"))
    served = BackgroundStudio(models, SessionStore(root=tmp_path_factory.mktemp("studio")), STUDIO_LIMITS)
    yield served
    served.stop()


def put(url: str, body: dict) -> dict:
    status, answer = call(url, "PUT", json.dumps(body).encode())
    assert status == 200, answer
    return json.loads(answer)


def test_image_masks_are_the_onnx_predictors(onnx_studio, export_folder):
    session = new_session(onnx_studio)
    base = f"{onnx_studio.url}/api/s/{session}"
    assert call(f"{base}/open", "POST", b'{"source": "sample-image"}')[0] == 200
    click = {"points": [[200, 170, 1], [40, 40, 0]], "box": None, "multimask": True}
    boxed = {"points": [], "box": list(SAMPLE_BOXES[1]), "multimask": False}
    put(f"{base}/image/objects/1", click)
    put(f"{base}/image/objects/2", boxed)
    archive = zipfile.ZipFile(io.BytesIO(call(f"{base}/image/masks.zip")[1]))

    predictor = OnnxImagePredictor(export_folder)
    encoded = predictor.encode_image(render_sample_image())
    for obj_id, body in ((1, click), (2, boxed)):
        prompts = {"input_boxes": [body["box"]]} if body["box"] else {
            "input_points": [[p[:2] for p in body["points"]]], "input_labels": [[p[2] for p in body["points"]]]}
        expected = predictor.predict(encoded, multimask_output=body["multimask"], binarize=False, **prompts)
        chosen = int(expected.iou_scores[0].argmax())
        found = np.asarray(Image.open(archive.open(f"mask_{obj_id}.png"))) > 0
        assert_mask_matches(found, torch.from_numpy(expected.masks[0, chosen]), f"mask_{obj_id}.png")


def test_video_tracking_and_correction_are_the_onnx_trackers(onnx_studio, export_folder):
    session = new_session(onnx_studio)
    base = f"{onnx_studio.url}/api/s/{session}"
    assert call(f"{base}/open", "POST", b'{"source": "sample-clip"}')[0] == 200
    steps = [
        ("prompt", {"frame": 0, "obj": 1, "points": [[200, 170, 1]], "box": None}),
        ("prompt", {"frame": 0, "obj": 2, "points": [], "box": list(SAMPLE_BOXES[1])}),
        ("propagate", {"direction": "forward", "start": 0}),
        ("prompt", {"frame": 8, "obj": 1, "points": [[280, 250, 1], [120, 120, 0]], "box": None}),
        ("propagate", {"direction": "both", "start": 8}),
    ]
    for kind, body in steps:
        if kind == "prompt":
            put(f"{base}/video/prompts", body)
        else:
            status, lines = call(f"{base}/video/propagate", "POST", json.dumps(body).encode())
            events = [json.loads(line) for line in lines.decode().splitlines()]
            assert status == 200 and events[-1]["type"] == "end" and events[-1]["error"] is None, events[-1]
    davis = zipfile.ZipFile(io.BytesIO(call(f"{base}/video/davis.zip")[1]))

    tracker = OnnxVideoTracker(export_folder, render_sample_clip())
    latest = {}
    for kind, body in steps:
        if kind == "prompt":
            points = body["points"]
            frames = [tracker.add_prompt(body["frame"], body["obj"], points=[p[:2] for p in points] or None,
                                         labels=[p[2] for p in points] or None, box=body["box"])]
        else:
            directions = {"forward": (False,), "both": (False, True)}[body["direction"]]
            frames = [frame for reverse in directions for frame in tracker.propagate(start_frame_idx=body["start"], reverse=reverse)]
        for frame in frames:
            latest[frame.frame_idx] = (torch.from_numpy(tracker.masks(frame, binarize=False)), list(frame.object_ids))
    assert sorted(davis.namelist()) == [f"{t:05d}.png" for t in sorted(latest)] and len(latest) == 16
    for frame_idx, (logits, obj_ids) in latest.items():
        assert_labels_match(np.asarray(Image.open(davis.open(f"{frame_idx:05d}.png"))), logits, obj_ids, f"frame {frame_idx}")
