"""Model calls off the event loop: one worker thread per device, and cancellable jobs.

Every call into a model (a prediction, an attribution map, its scores) runs on the single
worker thread of the model's device, so calls on one device never overlap (PyTorch models are
not made for concurrent use, and a GPU gains nothing from interleaving small calls), while the
event loop only awaits futures and keeps answering other requests.

A map is computed by a :class:`Job`. While it runs, a forward pre-hook on the model counts
the model's forward passes -- the unit of work of every attribution method and metric -- which
gives the progress (against the count of the last finished job of the same method on the same
run) and the point of cancellation: a cancelled job raises :class:`Cancelled` from that hook at
the next forward pass, and the method's own ``finally`` blocks remove its hooks as after any
error. A job cancelled before it starts never runs.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch
from torch import nn


class Cancelled(BaseException):
    """Raised inside a cancelled job (a ``BaseException``, so that a method's ``except
    Exception`` cannot swallow it)."""


class DeviceWorkers:
    """One single-thread executor per device; :meth:`run` awaits a call on it."""

    def __init__(self) -> None:
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def executor(self, device: torch.device | str) -> ThreadPoolExecutor:
        key = str(device)
        with self._lock:
            if key not in self._executors:
                self._executors[key] = ThreadPoolExecutor(1, thread_name_prefix=f"xaikit-{key}")
            return self._executors[key]

    def submit(self, device: torch.device | str, fn: Callable[..., Any], *args: Any) -> Future:
        return self.executor(device).submit(fn, *args)

    async def run(self, device: torch.device | str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the device's worker thread, awaited without blocking the loop."""
        return await asyncio.wrap_future(self.submit(device, fn, *args))

    def shutdown(self) -> None:
        with self._lock:
            executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)


_ids = itertools.count(1)


class Job:
    """One map computation: its state, progress and result, polled by the page.

    ``status`` goes ``queued`` -> ``running`` -> ``done`` | ``error`` | ``cancelled``.
    """

    def __init__(self, key: Hashable, description: str, expected_calls: int | None) -> None:
        self.id = f"j{next(_ids)}"
        self.key = key
        self.description = description
        self.status = "queued"
        self.phase = "queued"
        self.calls = 0
        self.expected_calls = expected_calls
        self.started: float | None = None
        self.finished: float | None = None
        self.created = time.monotonic()
        self.cancel_requested = False
        self.result: Any = None
        self.error: str | None = None
        self.future: Future | None = None
        self.settled = False

    def cancel(self) -> None:
        """Stop the job: at once if it has not started, else at the model's next forward pass."""
        self.cancel_requested = True
        if self.future is not None and self.future.cancel():
            self.finish("cancelled")

    def check(self) -> None:
        if self.cancel_requested:
            raise Cancelled()

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.check()

    def finish(self, status: str) -> None:
        """Set the final ``status`` (``done``, ``error`` or ``cancelled``)."""
        self.status = status
        self.phase = status
        self.finished = time.monotonic()

    def execute(self, model: nn.Module, fn: Callable[[Job], Any]) -> Any:
        """Run ``fn(self)`` with the counting, cancelling hook on ``model`` (worker thread)."""
        if self.cancel_requested:
            self.finish("cancelled")
            return None
        self.status = "running"
        self.started = time.monotonic()

        def count(_module: nn.Module, _inputs: Any) -> None:
            self.calls += 1
            if self.cancel_requested:
                raise Cancelled()

        handle = model.register_forward_pre_hook(count)
        try:
            self.result = fn(self)
            self.finish("done")
        except Cancelled:
            self.finish("cancelled")
        finally:
            handle.remove()
        return self.result

    def progress(self) -> dict[str, Any]:
        """What the page shows while the job runs."""
        elapsed = 0.0 if self.started is None else (self.finished or time.monotonic()) - self.started
        fraction = None
        if self.status == "done":
            fraction = 1.0
        elif self.expected_calls:
            fraction = min(0.99, self.calls / self.expected_calls)
        return {"phase": self.phase, "model_calls": self.calls,
                "expected_calls": self.expected_calls, "fraction": fraction,
                "seconds": round(elapsed, 3)}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"job": self.id, "status": self.status, "what": self.description,
                               "progress": self.progress()}
        if self.error is not None:
            out["error"] = self.error
        return out
