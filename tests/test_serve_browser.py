"""The explorer page in a real browser: Debian's Chromium driven by Playwright (no browser
download), against a real uvicorn server on 127.0.0.1 serving two tiny runs side by side.

``XAIKIT_SERVE_SHOTS=DIR`` keeps screenshots of the views in DIR. With
``XAIKIT_SERVE_RUNS="RUN [RUN ...]"`` (and ``XAIKIT_SERVE_DATA=PATH``) the last test takes them
of real runs instead: the grid, an image with maps, the runs side by side, an upload error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import serve_support as support  # tests/conftest.py puts tests/ on sys.path


METHODS = ("gradcam", "saliency")


def _playwright():
    support.require("starlette")
    support.require("uvicorn")
    browser = support.chromium()
    support.require("playwright")
    return browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    browser = _playwright()
    from xaikit.plugins import set_plugin_manager
    from xaikit.registry import list_attributions
    from xaikit.serve import create_app, load_served_runs

    set_plugin_manager(support.make_plugin_manager())
    try:
        missing = [m for m in METHODS if m not in list_attributions()]
        if missing:
            pytest.skip(f"attribution plugins not installed: {missing}")
        runs = load_served_runs(support.train_runs(tmp_path_factory.mktemp("browser")), device="cpu")
        with support.running_server(create_app(runs)) as url:
            yield url, browser, runs
    finally:
        set_plugin_manager(None)


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    url, browser, _runs = server
    problems: list[str] = []
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=browser)
        tab = chromium.new_page(viewport={"width": 1400, "height": 1000})
        tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        tab.on("console", lambda msg: problems.append(f"console: {msg.text}")
               if msg.type == "error" and "Failed to load resource" not in msg.text else None)
        tab.set_default_timeout(30_000)
        yield tab, url, problems
        chromium.close()


def _shot(tab, name: str) -> None:
    folder = os.environ.get("XAIKIT_SERVE_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _wait_for_maps(tab, count: int) -> list[dict]:
    """Wait until ``count`` heat maps have loaded; their natural sizes and sources."""
    tab.wait_for_selector(f".map-cell img.heat >> nth={count - 1}")
    heats = tab.locator(".map-cell img.heat")
    for i in range(heats.count()):
        heats.nth(i).evaluate("img => img.decode()")
    return heats.evaluate_all(
        "imgs => imgs.map(i => ({w: i.naturalWidth, h: i.naturalHeight, done: i.complete, src: i.src}))")


def _state(tab) -> dict[str, list[str]]:
    return parse_qs(urlsplit(tab.url).query)


def test_explore_filter_pick_methods_class_upload_and_bookmark(page, server):
    tab, url, problems = page
    runs = server[2]
    tab.goto(url)
    tab.wait_for_selector(".thumb img")
    assert tab.locator(".thumb").count() == len(runs[0].labels)
    # the class named like markup is text, never an element
    assert support.EVIL_CLASS in tab.locator("#f-class").inner_text()
    assert tab.locator("img[src='x']").count() == 0
    # filter to misclassified images
    tab.select_option("#f-outcome", "misclassified")
    wrong = int((runs[0].preds != runs[0].labels).sum())
    # (the CSP forbids wait_for_function's eval'd predicates: the test waits on the DOM)
    tab.wait_for_selector(f"#grid-count:has-text('{wrong} images match')")
    assert tab.locator(".thumb").count() == wrong == tab.locator(".thumb.wrong").count()
    assert _state(tab)["outcome"] == ["misclassified"]
    _shot(tab, "grid")
    # pick an image
    first = tab.locator(".thumb").first
    ref = first.get_attribute("data-image")
    first.click()
    tab.wait_for_selector(".prediction >> nth=1")  # both runs predict it
    assert _state(tab)["image"] == [ref]
    # choose exactly two methods
    checked = tab.locator("#methods input:checked").evaluate_all("boxes => boxes.map(b => b.value)")
    for name in checked:
        tab.uncheck(f"#methods input[value='{name}']")
    for name in METHODS:
        tab.check(f"#methods input[value='{name}']")
    heats = _wait_for_maps(tab, 2 * len(runs))
    assert all(h["done"] and (h["w"], h["h"]) == (32, 32) for h in heats), heats
    shown = tab.inner_text("main")
    assert not any(word in shown for word in ("null", "undefined", "NaN")), shown
    assert tab.locator(".map-cell").count() == 2 * len(runs)
    assert tab.locator(".map-cell .scores tr").count() >= 2 * len(runs) * 5
    assert _state(tab)["method"] == list(METHODS)
    # another class
    tab.select_option("#class", "3")
    tab.wait_for_selector(".map-cell .scores caption:has-text('class 3')")
    heats = _wait_for_maps(tab, 2 * len(runs))
    assert all("class=3" in h["src"] for h in heats)
    assert _state(tab)["class"] == ["3"]
    download = tab.locator(".map-cell a.download").first
    assert "kind=overlay" in download.get_attribute("href") and download.get_attribute("download")
    _shot(tab, "maps")
    bookmark = tab.url
    # an upload of another size, through both models
    tab.set_input_files("#file", files=[{"name": "mine.png", "mimeType": "image/png",
                                         "buffer": support.png(57, 45)}])
    tab.wait_for_url(lambda u: "image=u%3A" in u or "image=u:" in u)
    tab.wait_for_selector(".image-figure img.original")
    heats = _wait_for_maps(tab, 2 * len(runs))
    assert all(h["src"].count("image=u%3A") == 1 and (h["w"], h["h"]) == (32, 32) for h in heats)
    assert _state(tab)["image"][0].startswith("u:")
    assert tab.locator("#class option[value='true']").is_disabled()
    shown = tab.inner_text("main")
    assert "mine.png" in shown and not any(word in shown for word in ("null", "undefined", "NaN"))
    # a file that is no image: a clear message in the page
    tab.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                         "buffer": b"not an image"}])
    tab.wait_for_selector("#upload-error:not([hidden])")
    assert tab.inner_text("#upload-error") == "'notes.txt' is not a PNG or JPEG image"
    _shot(tab, "upload-error")
    # the bookmarked view comes back as it was
    tab.goto(bookmark)
    heats = _wait_for_maps(tab, 2 * len(runs))
    assert [b.get_attribute("value") for b in tab.locator("#methods input:checked").all()] == sorted(METHODS)
    assert tab.input_value("#class") == "3" and tab.input_value("#f-outcome") == "misclassified"
    assert all("class=3" in h["src"] and f"image={ref.replace(':', '%3A')}" in h["src"] for h in heats)
    assert tab.locator(f".thumb.selected[data-image='{ref}']").count() == 1
    assert problems == [], problems


def test_a_long_map_shows_progress_and_cancels(page, server):
    tab, url, problems = page
    tab.goto(url + "?image=0:11&method=test-slow")
    tab.wait_for_selector(".map-cell[data-run='0'] .map-status:has-text('map · ')")  # running
    for run in (0, 1):  # the second waits behind the first on the one CPU worker
        tab.click(f".map-cell[data-run='{run}'] button.cancel")
    tab.wait_for_selector(".map-cell .map-status:has-text('cancelled') >> nth=1")
    assert tab.locator("#f-outcome").is_enabled()  # the page still answers
    assert problems == [], problems


@pytest.mark.skipif(not os.environ.get("XAIKIT_SERVE_RUNS"), reason="XAIKIT_SERVE_RUNS not set")
def test_screenshots_of_real_runs(tmp_path):
    """Screenshots of real runs: ``XAIKIT_SERVE_RUNS="runs/ultimus runs/custom-resnet"``."""
    browser = _playwright()
    from playwright.sync_api import sync_playwright

    from xaikit.serve import create_app, load_served_runs

    folder = Path(os.environ.get("XAIKIT_SERVE_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    runs = load_served_runs(os.environ["XAIKIT_SERVE_RUNS"].split(),
                            data_path=os.environ.get("XAIKIT_SERVE_DATA"), device="cpu")
    view = "&".join(f"method={m}" for m in ("gradcam", "integrated-gradients", "scorecam", "rise"))
    with support.running_server(create_app(runs)) as url, sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=browser)
        tab = chromium.new_page(viewport={"width": 1440, "height": 1000})
        tab.set_default_timeout(300_000)
        tab.goto(url + "?outcome=misclassified&sort=confidence&order=desc")
        tab.wait_for_selector(".thumb img >> nth=23")
        tab.locator(".thumb img").evaluate_all(
            "imgs => Promise.all(imgs.slice(0, 24).map(i => i.decode().catch(() => null)))")
        tab.screenshot(path=str(folder / "real-grid.png"))
        tab.locator(".thumb").nth(3).click()
        tab.wait_for_url(lambda u: "image=" in u)
        tab.goto(tab.url + "&" + view)
        _wait_for_maps(tab, 4 * len(runs))
        tab.screenshot(path=str(folder / "real-maps.png"), full_page=True)
        tab.set_input_files("#file", files=[{"name": "photo.jpg", "mimeType": "image/jpeg",
                                             "buffer": support.png(40, 40, fmt="PNG")[:50]}])
        tab.wait_for_selector("#upload-error:not([hidden])")
        tab.screenshot(path=str(folder / "real-upload-error.png"))
        chromium.close()
