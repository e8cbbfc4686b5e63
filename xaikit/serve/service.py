"""The explorer's logic behind the HTTP routes: predictions, map jobs, the result cache.

Results are cached per ``(run, image, method, class, layer)`` (the class resolved to an index,
the layer to the one the method uses, ``None`` for methods that take none), together with the
errors of methods that cannot explain a model, so a repeated request costs nothing. A request
for a map that is being computed joins the running job instead of starting another.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from typing import Any

import torch

from xaikit.errors import XaikitError
from xaikit.evaluate import predict
from xaikit.explain import DEFAULT_METHODS
from xaikit.registry import attribution_entries, get_attribution
from xaikit.serve.compute import MapResult, compute_map
from xaikit.serve.state import LRU, ImageStore, NotFound, ServedRun
from xaikit.serve.worker import DeviceWorkers, Job

TOP_K = 5
MAX_JOBS = 2000


class Explorer:
    """The served runs, their device workers, the cache and the jobs of one server."""

    def __init__(self, runs: Sequence[ServedRun], cache_size: int = 4096) -> None:
        self.runs = list(runs)
        self.store = ImageStore(self.runs)
        self.workers = DeviceWorkers()
        self.results: LRU[MapResult] = LRU(cache_size)
        self.predictions: LRU[torch.Tensor] = LRU(cache_size)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.running: dict[Hashable, Job] = {}
        self.expected_calls: dict[tuple[int, str], int] = {}

    # -- what the page lists -------------------------------------------------------------

    def methods(self) -> list[dict[str, Any]]:
        """Every registered method with what the page shows of it."""
        out = []
        for name, entry in sorted(attribution_entries().items()):
            cls = entry.obj
            doc = inspect.cleandoc(cls.__doc__ or "").splitlines()
            out.append({"name": name, "plugin": entry.plugin, "uses_layer": bool(cls.uses_layer),
                        "signed": bool(cls.signed), "scale": cls.scale or "",
                        "class_discriminative": bool(cls.class_discriminative),
                        "description": doc[0] if doc else ""})
        return out

    def describe(self) -> dict[str, Any]:
        """The runs, the methods, and the methods shown first (``explain``'s defaults)."""
        methods = self.methods()
        registered = {m["name"] for m in methods}
        return {"runs": [r.describe() for r in self.runs], "methods": methods,
                "default_methods": [m for m in DEFAULT_METHODS if m in registered]}

    def list_images(self, served: ServedRun, *, label: int | None = None,
                    outcome: str = "all", min_conf: float = 0.0, max_conf: float = 1.0,
                    sort: str = "index", order: str = "asc", offset: int = 0,
                    limit: int = 60) -> dict[str, Any]:
        """The test images of a run that pass the filters, sorted, one page of them."""
        preds, conf, losses = served.preds, served.confidences, served.losses
        keep = (conf >= min_conf) & (conf <= max_conf)
        if label is not None:
            keep &= served.labels == label
        if outcome == "correct":
            keep &= preds == served.labels
        elif outcome == "misclassified":
            keep &= preds != served.labels
        ids = keep.nonzero().flatten()
        if sort != "index":
            values = (conf if sort == "confidence" else losses)[ids]
            ids = ids[torch.argsort(values, descending=order == "desc", stable=True)]
        elif order == "desc":
            ids = ids.flip(0)
        page = ids[offset:offset + limit].tolist()
        return {
            "run": served.index, "total": len(ids), "offset": offset, "limit": limit,
            "items": [{"image": f"{served.index}:{i}", "index": i, "label": int(served.labels[i]),
                       "pred": int(preds[i]), "confidence": float(conf[i]),
                       "loss": float(losses[i])} for i in page],
        }

    # -- predictions ---------------------------------------------------------------------

    async def probabilities(self, served: ServedRun, ref: str) -> torch.Tensor:
        """The run's class probabilities ``[K]`` on an image (a test image of the same run
        from the table computed at start; any other through the model, cached)."""
        _pixels, source, index = self.store.source(ref)
        if source is served and index is not None:
            return served.probs[index]
        key = (served.index, ref)
        cached = self.predictions.get(key)
        if cached is not None:
            return cached
        pixels = self.store.pixels(ref, served)
        probs = await self.workers.run(served.device, _predict_one, served, pixels)
        return self.predictions.put(key, probs)

    async def prediction(self, served: ServedRun, ref: str) -> dict[str, Any]:
        """Top-k classes with probabilities, the label of a test image, and the loss."""
        probs = await self.probabilities(served, ref)
        k = min(TOP_K, probs.numel())
        top_p, top_c = probs.topk(k)
        label, source = self.store.label(ref)
        label_name = source.classes[label] if source is not None and label is not None else None
        # the label counts for this run when it names one of its classes
        own = label if label_name is not None and label < len(served.classes) \
            and served.classes[label] == label_name else None
        pred = int(probs.argmax())
        return {
            "run": served.index, "image": ref,
            "top": [{"class": int(c), "name": served.classes[int(c)], "p": float(p)}
                    for c, p in zip(top_c, top_p)],
            "pred": pred, "pred_name": served.classes[pred], "confidence": float(probs.max()),
            "label": label, "label_name": label_name,
            "correct": None if own is None else own == pred,
            "loss": None if own is None else float(-torch.log(probs[own].clamp_min(1e-12))),
        }

    async def target(self, served: ServedRun, ref: str, value: str | None) -> int:
        """The class a map explains: ``pred`` (default), ``true`` or a class index.

        Raises:
            XaikitError: not a class of the run, or ``true`` for an upload.
        """
        text = (value or "pred").strip()
        if text == "pred":
            return int((await self.probabilities(served, ref)).argmax())
        if text == "true":
            label, source = self.store.label(ref)
            if label is None or source is None:
                raise XaikitError("class=true needs a test image; an upload has no label")
            return self.class_index(served, str(label))
        return self.class_index(served, text)

    @staticmethod
    def class_index(served: ServedRun, text: str) -> int:
        """``text`` as a class index of ``served``; XaikitError if it is none."""
        k = len(served.classes)
        if not text.isdigit() or not 0 <= int(text) < k:
            raise XaikitError(f"class must be pred, true or an index 0..{k - 1} "
                              f"of run {served.index}'s classes")
        return int(text)

    # -- maps ----------------------------------------------------------------------------

    def map_key(self, served: ServedRun, ref: str, method: str, target: int,
                layer: str | None) -> tuple:
        """The cache key; checks the method and the layer.

        Raises:
            UnknownNameError: no such method; XaikitError: a layer the model does not have.
        """
        cls = get_attribution(method)
        if not cls.uses_layer:
            layer = None
        elif layer:
            if layer not in served.layers:
                valid = ", ".join(served.layers) or "none"
                raise XaikitError(f"run {served.index} ({served.run.spec.name}) has no CAM layer "
                                  f"{layer!r}; layers with a spatial output: {valid}")
        else:
            layer = served.default_layer
        return (served.index, ref, method, target, layer)

    def start_map(self, key: tuple) -> MapResult | Job:
        """The cached result of ``key``, else the job computing it (started if need be)."""
        cached = self.results.get(key)
        if cached is not None:
            return cached
        job = self.running.get(key)
        if job is not None and not job.cancel_requested:
            return job
        run_index, ref, method, target, layer = key
        served = self.runs[run_index]
        pixels = self.store.pixels(ref, served)
        description = f"{method} of {served.name} on image {ref}"
        job = Job(key, description, self.expected_calls.get((run_index, method)))

        def work(j: Job) -> MapResult:
            return compute_map(served, ref, pixels, method, target, layer, j)

        loop = asyncio.get_running_loop()
        job.future = self.workers.submit(served.device, job.execute, served.model, work)
        job.future.add_done_callback(lambda f: loop.call_soon_threadsafe(self.settle, job))
        self.running[key] = job
        self.jobs[job.id] = job
        while len(self.jobs) > MAX_JOBS:
            self.jobs.popitem(last=False)
        return job

    def settle(self, job: Job) -> None:
        """Move a finished job's result into the cache (on the event loop; idempotent)."""
        future: Future | None = job.future
        if future is None or not future.done() or job.settled:
            return
        job.settled = True
        if self.running.get(job.key) is job:
            del self.running[job.key]
        if future.cancelled():
            job.finish("cancelled")
            return
        exc = future.exception()
        if exc is not None:
            job.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            job.finish("error")
            return
        result = future.result()
        if job.status != "done" or result is None:
            return
        if result.error is None:
            self.expected_calls[(job.key[0], job.key[2])] = job.calls
        else:
            job.status = "error"
            job.error = result.error
        self.results.put(job.key, result)

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r} (finished long ago or never started)")
        return job

    async def wait(self, job: Job, timeout: float) -> Job:
        """Wait up to ``timeout`` seconds for ``job`` to finish (the loop stays free)."""
        if job.future is not None and not job.future.done() and timeout > 0:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job.future)), timeout)
            except asyncio.TimeoutError:
                pass  # still running: the caller answers with its progress
            except asyncio.CancelledError:
                if not job.future.cancelled():
                    raise  # this request was cancelled, not the job
            except Exception:  # noqa: BLE001, S110 - the job's own error: settle() records it
                pass
        if job.future is not None and job.future.done():
            self.settle(job)
        return job

    async def result(self, key: tuple, timeout: float = 600.0) -> MapResult:
        """The result of ``key``, computed now if need be.

        Raises:
            XaikitError: the job was cancelled or failed.
        """
        started = self.start_map(key)
        if isinstance(started, MapResult):
            return started
        job = await self.wait(started, timeout)
        cached = self.results.get(key)
        if cached is not None:
            return cached
        raise XaikitError(job.error or f"the map was not computed ({job.status})")

    def close(self) -> None:
        for job in list(self.running.values()):
            job.cancel()
        self.workers.shutdown()


def _predict_one(served: ServedRun, pixels: torch.Tensor) -> torch.Tensor:
    return predict(served.model, pixels[None], served.mean, served.std,
                   device=served.device).float().cpu()[0]
