"""What ``xaikit serve`` holds in memory: the served runs, image references, uploads, the cache.

Only the runs named on the command line are served, each by its position (``0``, ``1``...);
nothing a request sends is ever used as a path. An image is named by a reference string:

* ``"R:I"`` -- test image ``I`` of served run ``R`` (its own test split);
* ``"u:HEX"`` -- an uploaded image, by the first 16 hex digits of its SHA-256 (server-chosen).

Any image can go through any served model: a run whose input has another shape gets the
pixels resized as :func:`xaikit.images.read_image_files` resizes a user's file (bilinear,
RGB or greyscale).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from xaikit.attribution.base import default_layer_name
from xaikit.device import resolve_device
from xaikit.errors import NotApplicableError, XaikitError
from xaikit.evaluate import predict
from xaikit.modules import module_mode
from xaikit.run import Run, load_data, load_model, load_run

V = TypeVar("V")

_TEST_REF = re.compile(r"(\d{1,3}):(\d{1,9})")
_UPLOAD_REF = re.compile(r"u:([0-9a-f]{16})")


class NotFound(XaikitError):
    """A reference to an image, a job or a run that the server does not hold (HTTP 404)."""


class LRU(Generic[V]):
    """A thread-safe least-recently-used dict of at most ``size`` entries."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def put(self, key: Hashable, value: V) -> V:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class ServedRun:
    """One run as the server holds it: model, test split (CPU uint8) and its predictions.

    Attributes:
        index: Position on the command line: the run's id in every request.
        run: The validated run folder.
        model: The checkpoint's model, in eval mode, on ``device``.
        device: Where its model computes (one worker thread per device serialises the calls).
        images, labels: The test split, ``uint8 [N, C, H, W]`` and ``int64 [N]``, on the CPU.
        mean, std: The normalisation of the model's input.
        probs: Softmax of the model on every test image ``[N, K]`` (CPU).
        layers: Names of the modules with a spatial output ``[B, C, h, w]`` (CAM layers),
            the default one first.
        default_layer: The model's default CAM layer (``None``: no spatial layer).
    """

    index: int
    run: Run
    model: nn.Module
    device: torch.device
    images: Tensor
    labels: Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    probs: Tensor
    layers: list[str]
    default_layer: str | None
    methods: dict[tuple[str, str | None], Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run.path.name

    @property
    def classes(self) -> list[str]:
        return self.run.classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def preds(self) -> Tensor:
        return self.probs.argmax(1)

    @property
    def confidences(self) -> Tensor:
        return self.probs.max(1).values

    @property
    def losses(self) -> Tensor:
        """Cross-entropy of each test image, ``-log p(label)``."""
        p = self.probs.gather(1, self.labels[:, None])[:, 0]
        return -torch.log(p.clamp_min(1e-12))

    def describe(self) -> dict[str, Any]:
        """The run as the page lists it."""
        correct = (self.preds == self.labels).float()
        return {
            "index": self.index, "name": self.name, "model": self.run.spec.name,
            "classes": list(self.classes), "num_test": len(self.labels),
            "accuracy": float(correct.mean()) if len(correct) else None,
            "device": str(self.device), "input_shape": list(self.input_shape),
            "layers": list(self.layers), "default_layer": self.default_layer,
        }


def spatial_layers(model: nn.Module, shape: Sequence[int], device: torch.device) -> list[str]:
    """Modules whose output is a 4-d tensor ``[B, C, h, w]`` with ``h * w > 1`` on one zero
    image (the layers a CAM can explain), in call order.

    The hooks are removed and the train/eval flags restored also when the pass raises.
    """
    seen: list[str] = []
    handles = []

    def hook_for(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if isinstance(output, Tensor) and output.ndim == 4 and output.shape[-2:].numel() > 1 \
                    and name not in seen:
                seen.append(name)
        return hook

    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(hook_for(name)))
        with module_mode(model, training=False), torch.no_grad():
            model(torch.zeros(1, *shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def load_served_runs(paths: Sequence[str | Path], data_path: str | None = None,
                     device: str = "auto",
                     status: Callable[[str], None] | None = None) -> list[ServedRun]:
    """Read every run, its model and its test split, and predict every test image.

    Runs that share a data source (same data set, path, subset and seed) share one copy.

    Raises:
        XaikitError: a folder that is not a run, a checkpoint that does not fit, data that
            cannot be loaded (one line each, as ``explain`` says them).
    """
    dev = resolve_device(device)
    data_memo: dict[tuple, tuple] = {}
    served = []
    for index, path in enumerate(paths):
        run = load_run(path)
        if status:
            status(f"loading {run.path.name}")
        model = load_model(run, dev)
        key = (run.config.dataset, data_path or run.config.data_path, run.config.subset,
               run.config.seed)
        if key not in data_memo:
            bundle = load_data(run, data_path)
            data_memo[key] = (bundle.test_images.cpu().contiguous(),
                              bundle.test_labels.cpu().long(), tuple(bundle.mean),
                              tuple(bundle.std))
        images, labels, mean, std = data_memo[key]
        if status:
            status(f"predicting {len(labels):,} test images of {run.path.name}")
        probs = predict(model, images, mean, std, device=dev).float().cpu()
        shape = tuple(int(v) for v in images.shape[1:])
        try:
            default = default_layer_name(model)
        except NotApplicableError:
            default = None
        layers = spatial_layers(model, shape, dev)
        if default is not None:
            layers = [default, *(n for n in layers if n != default)]
        served.append(ServedRun(index, run, model, dev, images, labels, mean, std, probs,
                                layers, default))
    if not served:
        raise XaikitError("name at least one run folder to serve")
    return served


@dataclass
class Upload:
    """An uploaded image: its display name, original size and pixels per model input shape."""

    name: str
    width: int
    height: int
    pixels: dict[tuple[int, int, int], Tensor]


def resize_pixels(image: Tensor, shape: Sequence[int]) -> Tensor:
    """``uint8 [C, H, W]`` as another model's input ``shape``, as a user's file would be read."""
    c, h, w = (int(v) for v in shape)
    if tuple(image.shape) == (c, h, w):
        return image
    array = image.permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    pil = pil.convert("RGB" if c == 3 else "L")
    if pil.size != (w, h):
        pil = pil.resize((w, h), Image.Resampling.BILINEAR)
    out = np.asarray(pil, dtype=np.uint8)
    if out.ndim == 2:
        out = out[:, :, None]
    return torch.from_numpy(out.copy()).permute(2, 0, 1)


class ImageStore:
    """Resolves image references to pixels; keeps the last ``max_uploads`` uploads."""

    def __init__(self, runs: Sequence[ServedRun], max_uploads: int = 64) -> None:
        self.runs = list(runs)
        self.uploads: LRU[Upload] = LRU(max_uploads)

    def run(self, index: Any) -> ServedRun:
        """The served run at ``index`` (an int or a decimal string).

        Raises:
            XaikitError: not a number; NotFound: no such run.
        """
        try:
            i = int(str(index).strip()) if not isinstance(index, int) else index
        except ValueError:
            raise XaikitError(f"run must be a number 0..{len(self.runs) - 1}") from None
        if not 0 <= i < len(self.runs):
            raise NotFound(f"no run {i}; this server serves runs 0..{len(self.runs) - 1}")
        return self.runs[i]

    def check(self, ref: str) -> str:
        """``ref`` if it names an image this server holds.

        Raises:
            XaikitError: a malformed reference; NotFound: no such image.
        """
        self.source(ref)
        return ref

    def source(self, ref: str) -> tuple[Tensor, ServedRun | None, int | None]:
        """``(pixels [C, H, W], run, test index)`` of a reference; run and index are ``None``
        for an upload, whose pixels are at the first run's input shape."""
        text = str(ref)
        match = _TEST_REF.fullmatch(text)
        if match:
            run = self.run(int(match.group(1)))
            i = int(match.group(2))
            if i >= len(run.labels):
                raise NotFound(f"run {run.index} has test images 0..{len(run.labels) - 1}, not {i}")
            return run.images[i], run, i
        match = _UPLOAD_REF.fullmatch(text)
        if match:
            upload = self.uploads.get(text)
            if upload is None:
                raise NotFound("this uploaded image is no longer on the server; upload it again")
            return next(iter(upload.pixels.values())), None, None
        raise XaikitError("image must be RUN:INDEX (a test image) or u:ID (an upload)")

    def pixels(self, ref: str, run: ServedRun) -> Tensor:
        """``uint8 [C, H, W]`` of ``ref`` as ``run``'s model takes it."""
        if str(ref).startswith("u:"):
            self.source(ref)
            upload = self.uploads.get(str(ref))
            assert upload is not None
            if run.input_shape in upload.pixels:
                return upload.pixels[run.input_shape]
        image, _source, _i = self.source(ref)
        return resize_pixels(image, run.input_shape)

    def label(self, ref: str) -> tuple[int | None, ServedRun | None]:
        """The true label of a test image and the run whose classes it is of; ``None`` for
        an upload."""
        _image, source, i = self.source(ref)
        if source is None or i is None:
            return None, None
        return int(source.labels[i]), source
