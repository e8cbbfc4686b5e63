"""``xaikit serve``: the JSON API through Starlette's test client, uploads, safety, the CLI.

Two tiny runs of two models on a synthetic set whose first class name is markup; a slow and a
broken method registered by the test plugin. The page in a real browser: test_serve_browser.py.
"""

from __future__ import annotations

import re
import sys
import threading
import warnings
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import serve_support as support  # tests/conftest.py puts tests/ on sys.path


EVIL_CLASS = support.EVIL_CLASS


@pytest.fixture(scope="module")
def serve_pm():
    support.require("starlette")
    support.require("httpx")
    from xaikit.plugins import set_plugin_manager

    pm = support.make_plugin_manager()
    set_plugin_manager(pm)
    yield pm
    set_plugin_manager(None)


@pytest.fixture(autouse=True)
def _use_serve_pm(serve_pm):
    from xaikit.plugins import set_plugin_manager

    set_plugin_manager(serve_pm)


@pytest.fixture(scope="module")
def run_paths(serve_pm, tmp_path_factory) -> list[Path]:
    return support.train_runs(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def served(run_paths):
    from xaikit.serve import load_served_runs

    return load_served_runs(run_paths, device="cpu")


def _client(app):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette 1.x prefers httpx2; httpx works the same
        from starlette.testclient import TestClient
    return TestClient(app)


@pytest.fixture(scope="module")
def app(served):
    from xaikit.serve import create_app

    return create_app(served, max_upload_bytes=64 * 1024)


@pytest.fixture(scope="module")
def client(app):
    with _client(app) as c:
        yield c


def _error(response, status: int | tuple[int, ...]) -> str:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and "Traceback" not in body["error"]
    return body["error"]


def _start_slow(client, **params) -> str:
    """Start a test-slow map and wait until its model calls have begun; its job id."""
    started = client.get("/api/map", params={"method": "test-slow", **params})
    assert started.status_code == 202, started.text
    job = started.json()["job"]
    for _ in range(200):
        if client.get(f"/api/jobs/{job}", params={"wait": 0.05}).json()["progress"]["model_calls"]:
            return job
    raise AssertionError("the slow job never started")


def _map(client, **params):
    response = client.get("/api/map", params={"wait": 60, **params})
    assert response.status_code == 200, response.text
    return response.json()


# -- listing ----------------------------------------------------------------------------------

def test_state_lists_both_runs_their_layers_and_every_registered_method(client, served):
    from xaikit.registry import list_attributions

    state = client.get("/api/state").json()
    assert [r["name"] for r in state["runs"]] == list(support.RUN_NAMES)
    assert [r["model"] for r in state["runs"]] == ["tiny-serve-a", "tiny-serve-b"]
    assert state["runs"][0]["classes"][0] == EVIL_CLASS
    assert state["runs"][0]["default_layer"] == "act" and state["runs"][0]["layers"][0] == "act"
    assert state["runs"][1]["default_layer"] == "conv"
    assert [m["name"] for m in state["methods"]] == list_attributions()
    assert state["default_methods"] == [m for m in ("gradcam", "integrated-gradients")
                                        if m in list_attributions()]
    assert state["max_upload_bytes"] == 64 * 1024


def test_grid_filters_sorts_and_pages(client, served):
    run = served[0]
    correct = run.preds == run.labels
    listing = client.get("/api/images", params={"outcome": "misclassified", "limit": 500}).json()
    assert listing["total"] == int((~correct).sum()) > 0
    assert all(item["pred"] != item["label"] for item in listing["items"])
    listing = client.get("/api/images", params={"outcome": "correct", "limit": 500}).json()
    assert listing["total"] == int(correct.sum())
    by_class = client.get("/api/images", params={"class": 3, "limit": 500}).json()
    assert by_class["total"] == int((run.labels == 3).sum()) and all(i["label"] == 3 for i in by_class["items"])
    conf = run.confidences
    low, high = float(conf.median()), float(conf.max())
    ranged = client.get("/api/images", params={"min_conf": low, "max_conf": high, "limit": 500}).json()
    assert ranged["total"] == int(((conf >= low) & (conf <= high)).sum())
    assert all(low <= i["confidence"] <= high for i in ranged["items"])
    by_conf = client.get("/api/images", params={"sort": "confidence", "order": "desc"}).json()["items"]
    assert [i["confidence"] for i in by_conf] == sorted((i["confidence"] for i in by_conf), reverse=True)
    by_loss = client.get("/api/images", params={"sort": "loss"}).json()["items"]
    assert [i["loss"] for i in by_loss] == sorted(i["loss"] for i in by_loss)
    assert by_loss[0]["loss"] == pytest.approx(float(run.losses.min()), rel=1e-5)
    page = client.get("/api/images", params={"offset": 5, "limit": 4}).json()
    assert [i["index"] for i in page["items"]] == [5, 6, 7, 8] and page["total"] == len(run.labels)
    second = client.get("/api/images", params={"run": 1, "limit": 1}).json()
    assert second["run"] == 1 and second["items"][0]["image"] == "1:0"
    for params, words in [({"outcome": "wrong"}, "outcome must be one of"),
                          ({"min_conf": "nan"}, "min_conf must be in 0..1"),
                          ({"limit": 0}, "limit must be an integer in 1..500"),
                          ({"class": 10}, "class must be pred, true or an index 0..9"),
                          ({"run": 2}, "no run 2"), ({"run": "x"}, "run must be a number")]:
        assert words in _error(client.get("/api/images", params=params), (400, 404))


def test_prediction_is_the_models_top_k(client, served):
    from xaikit.evaluate import predict

    run = served[1]
    body = client.get("/api/predict", params={"run": 1, "image": "0:4"}).json()
    probs = predict(run.model, run.images[4:5], run.mean, run.std)[0]
    top = probs.topk(5)
    assert [t["class"] for t in body["top"]] == top.indices.tolist()
    assert [t["p"] for t in body["top"]] == pytest.approx(top.values.tolist(), rel=1e-5)
    assert body["label"] == int(served[0].labels[4]) and body["label_name"]
    assert body["pred"] == int(probs.argmax()) and body["correct"] == (body["pred"] == body["label"])
    assert body["top"][0]["name"] == run.classes[body["pred"]]


# -- maps --------------------------------------------------------------------------------------

def test_map_png_is_the_input_size_and_a_second_request_is_a_cache_hit(client, app):
    explorer = app.state.explorer
    first = _map(client, image="0:2", method="gradcam", layer="conv")
    assert first["status"] == "done" and first["layer"] == "conv" and first["class"] == first["class"]
    assert {s["metric"] for s in first["scores"]} >= {"road_combined", "road_morf", "road_lerf",
                                                      "deletion", "insertion", "sparseness"}
    assert first["seconds"]["map"] > 0 and first["scale"][1] >= first["scale"][0]
    jobs, hits = len(explorer.jobs), explorer.results.hits
    again = client.get("/api/map", params={"image": "0:2", "method": "gradcam", "layer": "conv"}).json()
    assert again["cached"] is True and again["scores"] == first["scores"]
    assert len(explorer.jobs) == jobs and explorer.results.hits == hits + 1
    heat = client.get(f"/api/map.png?{first['query']}&kind=heat")
    assert heat.headers["content-type"] == "image/png"
    assert support.png_size(heat.content) == (32, 32, "RGBA")
    overlay = client.get(f"/api/map.png?{first['query']}&kind=overlay&scale=4&alpha=0.3")
    assert support.png_size(overlay.content) == (128, 128, "RGB")
    assert len(explorer.jobs) == jobs  # the PNGs came from the cache too
    assert client.get(f"/api/map.png?{first['query']}&kind=heat",
                      headers={"If-None-Match": heat.headers["etag"]}).status_code == 304


def test_scores_are_the_scorecards_per_image_values(client, served):
    from xaikit.explain import explain

    body = _map(client, image="0:7", method="saliency", **{"class": "true"})
    card = explain(served[0].run, ["saliency"], ids=[7], target="true", device="cpu",
                   sanity_images=0, model=served[0].model).scores["saliency"]
    served_scores = {s["metric"]: s["value"] for s in body["scores"]}
    for key in ("road_combined", "road_morf", "deletion", "insertion", "infidelity", "sparseness"):
        assert served_scores[key] == pytest.approx(card["per_image"][key][0], rel=1e-4, abs=1e-6), key
    assert body["class"] == int(served[0].labels[7])


def test_class_and_layer_choice(client, served):
    one = _map(client, image="1:3", method="gradcam", run=1, **{"class": 5})
    assert one["class"] == 5 and one["class_name"] == served[1].classes[5] and one["layer"] == "conv"
    pred = _map(client, image="1:3", method="gradcam", run=1)
    assert pred["class"] == int(served[1].preds[3])
    assert _map(client, image="0:3", method="saliency", layer="conv")["layer"] is None  # not a CAM
    for params, words in [({"class": 10}, "class must be pred, true or an index 0..9"),
                          ({"class": "-1"}, "class must be"),
                          ({"layer": "fc"}, "has no CAM layer 'fc'; layers with a spatial output: act, conv"),
                          ({"image": "0:99"}, "run 0 has test images 0..19, not 99"),
                          ({"image": "u:0123456789abcdef"}, "no longer on the server")]:
        query = {"image": "0:3", "method": "gradcam", **params}
        assert words in _error(client.get("/api/map", params=query), (400, 404))


def test_unknown_method_is_a_400_json_error(client):
    message = _error(client.get("/api/map", params={"image": "0:1", "method": "no-such-method"}), 400)
    assert message.startswith("unknown attribution method 'no-such-method'; registered: ")
    assert "gradcam" in message
    assert "missing parameter method" in _error(client.get("/api/map", params={"image": "0:1"}), 400)
    _error(client.get("/api/map.png", params={"image": "0:1", "method": "nope"}), 400)


def test_a_method_that_cannot_apply_is_one_line_and_is_cached(client, app):
    response = client.get("/api/map", params={"image": "0:1", "method": "test-broken", "wait": 30})
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "error" and body["error"] == \
        "test-broken cannot explain this model <b>at all</b>"
    again = client.get("/api/map", params={"image": "0:1", "method": "test-broken"})
    assert again.status_code == 422 and again.json()["cached"] is True
    png = client.get("/api/map.png", params={"image": "0:1", "method": "test-broken"})
    assert _error(png, 422) == body["error"]


def test_long_job_reports_progress_can_be_cancelled_and_the_server_keeps_answering(client, app):
    explorer = app.state.explorer
    job = _start_slow(client, image="0:5")
    progress = client.get(f"/api/jobs/{job}").json()
    assert progress["status"] == "running" and progress["progress"]["phase"] == "map"
    # other requests are answered while the model is busy on the worker thread
    assert client.get("/api/state").status_code == 200
    assert client.get("/api/images", params={"limit": 3}).status_code == 200
    assert client.get(f"/api/jobs/{job}").json()["status"] == "running"
    # the same map asked again joins the running job
    assert client.get("/api/map", params={"image": "0:5", "method": "test-slow"}).json()["job"] == job
    cancelled = client.delete(f"/api/jobs/{job}").json()
    done = client.get(f"/api/jobs/{job}", params={"wait": 5}).json()
    assert "cancelled" in (cancelled["status"], done["status"])
    assert done["status"] == "cancelled" and done["progress"]["model_calls"] < support.SLOW_CALLS
    assert explorer.results.get((0, "0:5", "test-slow", int(app.state.explorer.runs[0].preds[5]), None)) is None
    # a queued job is cancelled before it starts; the model is left without hooks
    first = client.get("/api/map", params={"image": "0:6", "method": "test-slow"}).json()["job"]
    queued = client.get("/api/map", params={"image": "0:8", "method": "test-slow"}).json()["job"]
    assert client.delete(f"/api/jobs/{queued}").json()["status"] == "cancelled"
    client.delete(f"/api/jobs/{first}")
    assert client.get(f"/api/jobs/{first}", params={"wait": 5}).json()["status"] == "cancelled"
    assert not explorer.runs[0].model._forward_pre_hooks
    assert _error(client.get("/api/jobs/j999999"), 404).startswith("no job 'j999999'")


def test_model_calls_run_on_one_worker_thread_per_device(client, app):
    support.SlowMethod.threads.clear()
    for image in ("0:10", "1:10"):
        job = _start_slow(client, image=image, run=image[0])
        client.delete(f"/api/jobs/{job}")
        client.get(f"/api/jobs/{job}", params={"wait": 5})
    names = set(support.SlowMethod.threads)
    assert names and all(n.startswith("xaikit-cpu") for n in names) and len(names) == 1
    assert list(app.state.explorer.workers._executors) == ["cpu"]
    assert threading.current_thread().name not in names


# -- uploads -----------------------------------------------------------------------------------

def test_upload_of_any_size_is_predicted_and_explained_by_both_runs(client, served):
    body = support.png(53, 41)
    answer = client.post("/api/upload", content=body, headers={"X-Filename": "my%20cat%3Cb%3E.png"})
    assert answer.status_code == 201, answer.text
    upload = answer.json()
    assert re.fullmatch(r"u:[0-9a-f]{16}", upload["image"])
    assert upload["name"] == "my cat<b>.png" and (upload["width"], upload["height"]) == (53, 41)
    again = client.post("/api/upload", content=body).json()
    assert again["image"] == upload["image"]
    image = client.get("/api/image.png", params={"image": upload["image"]})
    assert support.png_size(image.content)[:2] == (32, 32)
    for run in (0, 1):
        pred = client.get("/api/predict", params={"run": run, "image": upload["image"]}).json()
        assert pred["label"] is None and pred["correct"] is None and len(pred["top"]) == 5
        result = _map(client, run=run, image=upload["image"], method="gradcam")
        assert result["status"] == "done"
    jpeg = client.post("/api/upload", content=support.png(300, 200, fmt="JPEG"),
                       headers={"X-Filename": "big.jpg"})
    assert jpeg.status_code == 201
    assert "class=true needs a test image" in _error(client.get(
        "/api/map", params={"image": upload["image"], "method": "gradcam", "class": "true"}), 400)


def test_bad_uploads_are_4xx_json_with_a_clear_message(client):
    truncated = support.png(40, 40)[:60]
    message = _error(client.post("/api/upload", content=truncated,
                                 headers={"X-Filename": "broken.png"}), 422)
    assert message.startswith("'broken.png' is not an image xaikit can read (")
    assert "/tmp" not in message and "xaikit-upload" not in message
    assert _error(client.post("/api/upload", content=b"just text, no pixels",
                              headers={"X-Filename": "notes.txt"}), 415) == \
        "'notes.txt' is not a PNG or JPEG image"
    assert _error(client.post("/api/upload", content=b"GIF89a" + bytes(40)), 415) == \
        "'upload' is not a PNG or JPEG image"
    assert _error(client.post("/api/upload", content=b""), 400) == \
        "the upload is empty; choose a PNG or JPEG image"
    big = support.png(600, 600) + bytes(70 * 1024)
    assert _error(client.post("/api/upload", content=big), 413) == \
        f"the upload is {len(big) // 1024} KiB; the limit is 64 KiB"
    def chunks():
        for _ in range(40):
            yield bytes(4096)
    assert "larger than the limit of 64 KiB" in _error(client.post("/api/upload", content=chunks()), 413)


def test_an_image_goes_to_a_model_of_another_input_shape_as_a_file_would():
    import numpy as np
    from PIL import Image

    from xaikit.serve.state import resize_pixels

    rgb = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    assert resize_pixels(rgb, (3, 32, 32)) is rgb
    grey = resize_pixels(rgb, (1, 28, 28))
    expected = Image.fromarray(rgb.permute(1, 2, 0).numpy()).convert("L").resize((28, 28), Image.Resampling.BILINEAR)
    assert grey.shape == (1, 28, 28) and torch.equal(grey[0], torch.from_numpy(np.array(expected)))
    assert resize_pixels(grey, (3, 16, 16)).shape == (3, 16, 16)


def test_huge_image_is_refused_from_its_header(served):
    from xaikit.serve import create_app
    from xaikit.serve.uploads import MAX_UPLOAD_PIXELS

    side = int(MAX_UPLOAD_PIXELS ** 0.5) + 1
    huge = support.png(side, side, color=(0, 0, 0))
    with _client(create_app(served, max_upload_bytes=len(huge) + 1)) as c:
        message = _error(c.post("/api/upload", content=huge, headers={"X-Filename": "huge.png"}), 413)
    assert message == f"'huge.png' is {side}x{side} pixels; the limit is {MAX_UPLOAD_PIXELS:,} pixels"


# -- safety ------------------------------------------------------------------------------------

def test_no_request_reaches_the_file_system(client):
    for path in ("/static/../../pyproject.toml", "/static/..%2F..%2Fpyproject.toml",
                 "/static/%2e%2e/app.py", "/static//etc/passwd", "/static/js/../../app.py",
                 "/static/style.css/../../__init__.py", "/etc/passwd", "/api/jobs/..%2F..%2Fetc"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "tool.setuptools" not in response.text and "root:" not in response.text
    for ref in ("../../etc/passwd", "/etc/passwd", "0:../1", "u:../../etc", "0:1/../2", "run/0:1"):
        _error(client.get("/api/image.png", params={"image": ref}), (400, 404))
    _error(client.get("/api/images", params={"run": "../runs"}), 400)
    assert client.get("/static/js/main.js").status_code == 200


def test_every_answer_carries_a_strict_content_security_policy(client):
    for path in ("/", "/static/style.css", "/static/js/main.js", "/api/state", "/nope",
                 "/api/map?image=0:1&method=nope", "/api/colorbar.png"):
        response = client.get(path)
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy, path
        assert "img-src 'self' data: blob:" in policy and "unsafe" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    page = client.get("/").text
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "no inline script"
    assert "<style" not in page and " style=" not in page and "onclick" not in page
    static = Path(__file__).resolve().parents[1] / "xaikit" / "serve" / "static"
    for script in static.rglob("*.js"):
        text = script.read_text()
        assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write|\beval\(|new Function",
                             text), script.name


def test_state_in_the_url_is_served_the_page_and_cross_origin_writes_are_refused(client, served):
    page = client.get("/", params={"image": "0:3", "method": ["gradcam", "saliency"], "class": "2",
                                   "layer": "act"})
    assert page.status_code == 200 and '<script type="module" src="/static/js/main.js">' in page.text
    refused = client.post("/api/upload", content=support.png(8, 8),
                          headers={"Origin": "http://evil.example"})
    assert _error(refused, 403) == "requests from another site are refused"
    assert client.post("/api/upload", content=support.png(8, 8),
                       headers={"Origin": "http://testserver"}).status_code == 201
    from xaikit.serve import create_app
    from xaikit.serve.server import allowed_hosts

    with _client(create_app(served, allowed_hosts=allowed_hosts("127.0.0.1"))) as c:
        assert c.get("/api/state", headers={"Host": "evil.example"}).status_code == 400
        assert c.get("/api/state", headers={"Host": "127.0.0.1:8000"}).status_code == 200
        assert c.get("/api/state", headers={"Host": "localhost:8000"}).status_code == 200


def test_an_unexpected_error_is_a_500_json_line_without_traceback(app, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret detail /home/user/runs")

    monkeypatch.setattr(app.state.explorer, "list_images", broken)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.get("/api/images")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error; the server's log says more"}
    assert "content-security-policy" in response.headers


# -- CLI ---------------------------------------------------------------------------------------

def _cli(args):
    from xaikit.cli import app

    return CliRunner().invoke(app, ["serve", *args])


def _one_error_line(result, words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert words in lines[0], lines[0]


def test_cli_bad_input_is_one_error_line(run_paths, tmp_path):
    _one_error_line(_cli([str(run_paths[0]), "--port", "http"]),
                    "--port must be an integer 0..65535 (0: any free port), got 'http'")
    _one_error_line(_cli([str(run_paths[0]), "--port", "70000"]), "--port must be an integer")
    _one_error_line(_cli([str(tmp_path / "missing"), "--port", "0"]),
                    "is not a run folder (no such directory)")
    (tmp_path / "empty").mkdir()
    _one_error_line(_cli([str(run_paths[0]), str(tmp_path / "empty"), "--port", "0"]),
                    "is not a run folder (no config.json)")
    _one_error_line(_cli([str(run_paths[0]), "--host", "no such host!", "--port", "0"]),
                    "cannot listen on 'no such host!'")
    _one_error_line(_cli([str(run_paths[0]), "--port", "0", "--device", "tpu"]),
                    "unknown device 'tpu'")


def test_cli_prints_the_url_and_warns_when_serving_every_interface(run_paths, monkeypatch):
    from xaikit.serve import server

    served_apps = []
    monkeypatch.setattr(server, "serve", lambda app, sock: (served_apps.append(app), sock.close()))
    local = _cli([*map(str, run_paths), "--port", "0"])
    assert local.exit_code == 0, local.output
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", local.stdout.strip())
    assert "warning" not in local.stderr
    everyone = _cli([str(run_paths[0]), "--port", "0", "--host", "0.0.0.0"])
    assert everyone.exit_code == 0, everyone.output
    warning = [line for line in everyone.stderr.splitlines() if line.startswith("warning:")]
    assert warning == [("warning: --host 0.0.0.0 serves these runs, without authentication, to "
                        "every machine that can reach this one; use 127.0.0.1 to keep them local")]
    assert len(served_apps) == 2 and len(served_apps[0].state.explorer.runs) == 2


def test_port_in_use_is_one_error_line(run_paths):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_error_line(_cli([str(run_paths[0]), "--port", str(port)]),
                        f"cannot listen on 127.0.0.1:{port}: Address already in use")


def test_server_helpers():
    from xaikit.serve.server import allowed_hosts, is_loopback, is_wildcard, parse_port

    assert parse_port("0") == 0 and parse_port(" 8000 ") == 8000
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and is_wildcard("::")
    assert allowed_hosts("0.0.0.0") == ["*"] and "[::1]" in allowed_hosts("::1")
    assert allowed_hosts("192.168.1.4")[-1] == "192.168.1.4"
