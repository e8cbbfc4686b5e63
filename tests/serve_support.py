"""Helpers of the ``xaikit serve`` tests (test_serve.py, test_serve_browser.py): a plugin with
two tiny models, a synthetic data set whose first class name is markup, a slow and a broken
attribution method, two trained runs, PNG bytes, and a real uvicorn server in a thread.

This module holds no tests; the test modules load it by path (the tests folder is no package).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from PIL import Image

from xaikit.attribution.base import Attribution
from xaikit.errors import NotApplicableError
from xaikit.hookspecs import hookimpl
from xaikit.run import RunConfig
from xaikit.specs import DatasetSpec, ModelSpec, Recipe
from xaikit.testing import TinyConvNet

EVIL_CLASS = '<img src=x onerror="document.title=1">'
RUN_NAMES = ("run-a&<b>", "run-b")
SLOW_CALLS = 400


class SlowMethod(Attribution):
    """A method that calls the model :data:`SLOW_CALLS` times, 10 ms apart (a long job)."""

    name = "test-slow"
    threads: ClassVar[list[str]] = []

    def attribute(self, x, target):
        SlowMethod.threads.append(threading.current_thread().name)
        for _ in range(SLOW_CALLS):
            self.model(x)
            time.sleep(0.01)
        return x.abs().sum(1)


class BrokenMethod(Attribution):
    """A method that cannot explain any model."""

    name = "test-broken"

    def attribute(self, x, target):
        raise NotApplicableError("test-broken cannot explain this model <b>at all</b>")


class ServePlugin:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("tiny-serve-a", lambda **kw: TinyConvNet(width=6, **kw), "act",
                           recipe=Recipe(epochs=1, batch_size=20)))
        register(ModelSpec("tiny-serve-b", lambda **kw: TinyConvNet(width=4, **kw), "conv",
                           recipe=Recipe(epochs=1, batch_size=20)))

    @hookimpl
    def register_datasets(self, register):
        register(DatasetSpec("evil-serve", _evil_synthetic, "synthetic, a class named <img>"))

    @hookimpl
    def register_attributions(self, register):
        register(SlowMethod)
        register(BrokenMethod)


def _evil_synthetic(path, cache_dir):
    from xaikit.data.synthetic import load_synthetic

    bundle = load_synthetic(path, cache_dir)
    return dataclasses.replace(bundle, classes=[EVIL_CLASS, *bundle.classes[1:]])


def make_plugin_manager():
    from xaikit.plugins import make_plugin_manager as make

    pm = make()
    pm.register(ServePlugin(), name="serve-test-plugin")
    return pm


def train_runs(folder: Path) -> list[Path]:
    """Two 1-epoch runs of two tiny models on 100 synthetic images (20 test images each)."""
    from xaikit.train import train

    runs = []
    for model, name in zip(("tiny-serve-a", "tiny-serve-b"), RUN_NAMES):
        torch.manual_seed(0)
        runs.append(train(RunConfig(model, dataset="evil-serve", subset=100, device="cpu"),
                          folder / name, show_progress=False))
    return runs


def require(module: str) -> None:
    """Skip without ``module`` (the ``serve`` extra); in CI (CI=true) fail instead."""
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed; `pip install -e '.[dev,serve]'` (make install)")
        pytest.skip(f"{module} is not installed (pip install 'xaikit[serve]')")


def chromium(purpose: str = "run the explorer") -> str:
    """Debian's Chromium; skip without it, but fail in CI (CI=true), which must ``purpose``."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"chromium is not installed (run `make chromium`); CI must {purpose}")
    pytest.skip("chromium is not installed (run `make chromium`)")


def png(width: int, height: int, color=(200, 30, 30), fmt: str = "PNG") -> bytes:
    """An image file of ``width x height`` with a light square on ``color``."""
    image = Image.new("RGB", (width, height), color)
    image.paste((240, 240, 240), (width // 4, height // 4, width // 2, height // 2))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def png_size(data: bytes) -> tuple[int, int, str]:
    with Image.open(io.BytesIO(data)) as image:
        return image.width, image.height, image.mode


@contextlib.contextmanager
def running_server(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yield its URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
