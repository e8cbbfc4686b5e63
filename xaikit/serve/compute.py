"""One attribution map of one image, with its per-image scores, and the PNGs the page shows.

The map is computed as ``xaikit explain`` computes it (:func:`xaikit.explain.build_method`,
:func:`xaikit.explain.compute_maps`) and scored on this image by the scorecard's per-image
metrics (:func:`xaikit.metrics.scorecard.map_scores`: ROAD MoRF / LeRF / combined, deletion and
insertion with the random reference at the method's resolution, infidelity, sparseness and
complexity; the completeness gap for a method with baselines such as integrated gradients),
with the scorecard's settings and seed, so a score here is the per-image value that ``explain``
averages. The robustness and sanity metrics recompute the map many times and are left to
``explain`` and ``report``.

PNGs: the heat map alone (RGBA: the colour map, and for a signed map ``|m|`` as alpha, so that
the page's opacity slider gives exactly :func:`xaikit.attribution.plot.overlay`), the overlay
(:func:`~xaikit.attribution.plot.overlay`, for downloads), the input image, and a colour bar.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field
from typing import Any

import matplotlib
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from xaikit.attribution.plot import normalise_map, overlay
from xaikit.data import normalize
from xaikit.errors import NotApplicableError, XaikitError
from xaikit.explain import build_method, compute_maps
from xaikit.metrics import METRICS, completeness_gap, map_resolution
from xaikit.metrics.scorecard import ScorecardSettings, map_scores
from xaikit.serve.state import ServedRun
from xaikit.serve.worker import Job

SCORE_GROUPS = ("road", "deletion_insertion", "infidelity", "complexity")
"""The scorecard groups computed per image (those that need only the map)."""

SCORE_ORDER = ("road_combined", "road_morf", "road_lerf", "deletion", "deletion_random",
               "insertion", "insertion_random", "infidelity", "completeness_gap", "sparseness",
               "complexity")


@dataclass
class MapResult:
    """A map ``[H, W]`` (CPU float) and what the page shows beside it, or why there is none."""

    run: int
    image: str
    method: str
    target: int
    layer: str | None
    map: Tensor | None = None
    signed: bool = False
    seconds_map: float = 0.0
    seconds_scores: float = 0.0
    scores: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None
    _pngs: dict[Any, bytes] = field(default_factory=dict, repr=False)

    def scale(self) -> tuple[float, float]:
        """The raw map values at the two ends of the colour bar (see ``normalise_map``)."""
        if self.map is None:
            return 0.0, 0.0
        a = self.map.double()
        top = float(torch.quantile(a.abs().flatten(), 0.995)) or 1.0
        if self.signed:
            return -top, top
        low = min(float(a.min()), 0.0)
        return low, low + top

    def to_json(self, classes: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run": self.run, "image": self.image, "method": self.method,
            "class": self.target,
            "class_name": classes[self.target] if 0 <= self.target < len(classes) else None,
            "layer": self.layer,
        }
        if self.error is not None:
            return {**out, "status": "error", "error": self.error}
        low, high = self.scale()
        scores = [
            {"metric": key, "value": self.scores[key],
             "higher_is_better": METRICS[key].higher_is_better,
             "criterion": METRICS[key].criterion, "description": METRICS[key].description}
            for key in SCORE_ORDER if key in self.scores
        ]
        return {**out, "status": "done", "signed": self.signed, "scale": [low, high],
                "seconds": {"map": self.seconds_map, "scores": self.seconds_scores},
                "scores": scores}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def method_for(served: ServedRun, name: str, layer: str | None) -> Any:
    """The method ``name`` bound to the run's model (built once per run, method and layer;
    called on the device's worker thread only)."""
    key = (name, layer)
    if key not in served.methods:
        served.methods[key] = build_method(name, served.model, layer)
    return served.methods[key]


def compute_map(served: ServedRun, image: str, pixels: Tensor, name: str, target: int,
                layer: str | None, job: Job) -> MapResult:
    """The map of ``name`` for class ``target`` on one image, and its scores (worker thread).

    A method that cannot explain the model, a bad layer or a failing method give a
    ``MapResult`` with ``error`` (one line), never an exception; only cancellation raises.
    """
    result = MapResult(served.index, image, name, target, layer)
    try:
        job.set_phase("map")
        method = method_for(served, name, layer)
        result.layer = method.layer_name
        x = normalize(pixels[None].to(served.device), served.mean, served.std)
        targets = torch.tensor([target], device=served.device)
        maps, result.seconds_map = compute_maps(method, x, targets, 1)
        result.map = maps[0].float()
        result.signed = bool(method.signed)
        started = time.perf_counter()
        settings = ScorecardSettings(groups=SCORE_GROUPS, data_std=tuple(served.std))
        on_device = maps.to(served.device)
        per, _details, _seconds = map_scores(served.model, x, on_device, targets, settings,
                                             map_resolution(method, x), progress=job.set_phase)
        baselines = getattr(method, "baselines", None)
        if callable(baselines):
            job.set_phase("completeness_gap")
            per["completeness_gap"] = completeness_gap(served.model, x, on_device, targets,
                                                       baselines(x))
        result.seconds_scores = time.perf_counter() - started
        result.scores = {key: _finite(values) for key, values in per.items()}
    except (NotApplicableError, XaikitError) as exc:
        message = _first_line(exc)
        result.error = message if message.startswith(name) else f"{name}: {message}"
        result.map = None
    except Exception as exc:  # noqa: BLE001 - a plugin's bug is one line in the page
        import traceback

        traceback.print_exc()
        result.error = f"{name} failed: {type(exc).__name__}: {_first_line(exc)}"
        result.map = None
    return result


def _finite(values: Tensor | Any) -> float | None:
    value = float(torch.as_tensor(values).reshape(-1)[0])
    return value if math.isfinite(value) else None


def png_bytes(rgb: np.ndarray, scale: int = 1) -> bytes:
    """PNG of an ``[H, W, 3|4]`` float (0..1) or uint8 array, enlarged ``scale`` times
    (nearest neighbour)."""
    array = rgb if rgb.dtype == np.uint8 else np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    if scale > 1:
        array = array.repeat(scale, axis=0).repeat(scale, axis=1)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def heat_png(result: MapResult) -> bytes:
    """The map in colour (``jet`` over 0..1, or ``bwr`` over -1..1 with ``|m|`` as alpha)."""
    key = ("heat",)
    if key not in result._pngs:
        assert result.map is not None
        m = normalise_map(result.map, result.signed)
        if result.signed:
            rgba = matplotlib.colormaps["bwr"]((m + 1.0) / 2.0)
            rgba[..., 3] = np.abs(m)
        else:
            rgba = matplotlib.colormaps["jet"](m)
        result._pngs[key] = png_bytes(rgba)
    return result._pngs[key]


def overlay_png(result: MapResult, pixels: Tensor, alpha: float, scale: int) -> bytes:
    """The input blended with the map, as ``xaikit explain`` draws it, at ``alpha``."""
    assert result.map is not None
    image = pixels if pixels.shape[0] == 3 else pixels.expand(3, -1, -1)
    return png_bytes(overlay(image, result.map, result.signed, alpha=alpha), scale)


def image_png(pixels: Tensor, scale: int = 1) -> bytes:
    """The ``uint8 [C, H, W]`` image as a PNG."""
    return png_bytes(pixels.permute(1, 2, 0).cpu().numpy(), scale)


def colorbar_png(signed: bool, width: int = 256) -> bytes:
    """A ``width x 1`` colour bar of the colour map the heat maps use."""
    t = np.linspace(0.0, 1.0, width)
    rgba = matplotlib.colormaps["bwr" if signed else "jet"](t)[None, :, :3]
    return png_bytes(rgba)
