"""Explain a trained run: attribution maps from several methods on chosen test images, scored.

:func:`explain` picks test images (N spread over the classes, given ids, or only misclassified
ones), runs each method over them in batches, scores each method with
:func:`xaikit.metrics.scorecard` (ROAD, deletion/insertion against a random map, robustness,
cascading randomisation sanity, IG completeness, bootstrap intervals) and returns everything
as one :class:`Explanation`. ``Explanation.save`` writes ``explanations.json`` (scores),
``explanations.pt`` (the maps) and ``explanations.png`` (rows: images; columns: input, then
methods); :func:`load_explanation` reads them back, so ``xaikit report`` reuses what
``xaikit explain`` computed instead of computing it again.

A method that cannot apply to the model (a CAM method on a model with no spatial layer) is
skipped with its reason (``Explanation.skipped``) and the others go on.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import pydantic
from typing_extensions import TypedDict

import torch
from torch import Tensor, nn

from xaikit.atomic import atomic_write_bytes, atomic_write_json
from xaikit.attribution.base import Attribution
from xaikit.attribution.plot import explanation_grid
from xaikit.data import normalize
from xaikit.distributed import agree_on_errors, all_gather_object, is_main, rank, rank_device, world_size
from xaikit.errors import NotApplicableError, RunError, XaikitError
from xaikit.evaluate import predict, predict_sharded
from xaikit.metrics import ScorecardSettings
from xaikit.metrics.scorecard import image_blocks, plan_checks, score_block, summarize
from xaikit.metrics.cost import count_evaluations
from xaikit.modules import module_mode
from xaikit.registry import get_attribution, list_attributions, resolve_methods
from xaikit.run import (
    EXPLANATIONS_JSON, EXPLANATIONS_PNG, Run, check_output_folder, load_data, load_model, load_run,
    read_text, validate_json,
)
from xaikit.specs import DataBundle

_STRICT = pydantic.ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
_OPEN = pydantic.ConfigDict(strict=True, extra="allow", allow_inf_nan=False)


@pydantic.with_config(_STRICT)
class MetricScore(TypedDict):
    """One metric of a scorecard: a mean over images with its bootstrap interval (``None``
    where no value was finite), how many images it is over, and which way is better."""

    mean: float | None
    low: float | None
    high: float | None
    n: pydantic.conint(ge=0)  # type: ignore[valid-type]
    higher_is_better: bool
    criterion: str


@pydantic.with_config(_STRICT)
class Verdict(TypedDict):
    verdict: Literal["pass", "fail", "uncertain"]
    metric: str
    threshold: float
    direction: Literal["below", "above"]


@pydantic.with_config(_OPEN)
class MethodScores(TypedDict):
    """A scorecard (:func:`xaikit.metrics.scorecard`) as far as the report reads it; the other
    keys (curves, per-image scores, settings) are kept as they are."""

    method: str
    n_images: pydantic.conint(ge=1)  # type: ignore[valid-type]
    layer: str | None
    signed: bool | None
    scale: str
    metrics: dict[str, MetricScore]
    verdicts: dict[str, Verdict]
    headline: dict[str, dict[str, Any]]
    seconds: dict[str, float]
    seconds_per_image: pydantic.confloat(ge=0)  # type: ignore[valid-type]


@pydantic.with_config(_STRICT)
class ExplanationRecord(TypedDict):
    """``explanations.json``: what :meth:`Explanation.to_json` writes."""

    model: str
    device: str
    classes: list[str]
    ids: list[pydantic.conint(ge=0)]  # type: ignore[valid-type]
    labels: list[pydantic.conint(ge=-1)]  # type: ignore[valid-type]
    preds: list[pydantic.conint(ge=0)]  # type: ignore[valid-type]
    confidences: list[pydantic.confloat(ge=0, le=1)]  # type: ignore[valid-type]
    targets: list[pydantic.conint(ge=0)]  # type: ignore[valid-type]
    files: list[str]
    top: list[list[tuple[pydantic.conint(ge=0), pydantic.confloat(ge=0, le=1)]]]  # type: ignore[valid-type]
    misclassified_only: bool
    grid: str
    methods: dict[str, MethodScores]
    controls: dict[str, MethodScores]
    skipped: dict[str, str]


_RECORD_ADAPTER = pydantic.TypeAdapter(ExplanationRecord)

DEFAULT_METHODS = ("gradcam", "integrated-gradients")
CONTROLS = ("random", "sobel", "center")
"""The controls every method is compared with (the ``baselines`` plugin), where registered."""
EXPLANATIONS_MAPS = "explanations.pt"

ProgressFn = Callable[[str, int, int], None]


UNKNOWN = -1
"""The label of a user's image file: there is none."""


@dataclass(frozen=True)
class Selection:
    """Images chosen for explanation, with the model's predictions (all on the CPU).

    Test images carry their test-split index in ``ids``; a user's files carry their position
    in ``ids``, their names in ``files`` and the label :data:`UNKNOWN`. ``targets`` is the class
    explained per image (the prediction unless asked otherwise); ``top`` the top-3 classes and
    probabilities.
    """

    ids: list[int]
    images: Tensor  # uint8 [N, C, H, W]
    labels: list[int]
    preds: list[int]
    confidences: list[float]
    targets: list[int] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    top: list[list[tuple[int, float]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def inputs(self, data: DataBundle, device: torch.device) -> Tensor:
        """The normalised float images ``[N, C, H, W]`` on ``device``, as the model takes them."""
        return normalize(self.images.to(device), data.mean, data.std)

    def head(self, n: int) -> "Selection":
        """The first ``n`` images."""
        return Selection(self.ids[:n], self.images[:n], self.labels[:n], self.preds[:n],
                         self.confidences[:n], self.targets[:n], self.files[:n], self.top[:n])

    def with_targets(self, targets: list[int]) -> "Selection":
        """The same images, explaining ``targets``."""
        return Selection(self.ids, self.images, self.labels, self.preds, self.confidences,
                         list(targets), self.files, self.top)


@dataclass
class MethodResult:
    """One method's maps ``[N, H, W]`` (CPU) on a selection and its scorecard."""

    name: str
    maps: Tensor
    scores: dict[str, Any]
    signed: bool
    layer: str | None


@dataclass
class Explanation:
    """What :func:`explain` computed: the images, each method's maps and scores, the skipped
    methods and why."""

    model: str
    classes: list[str]
    device: str
    selection: Selection
    results: dict[str, MethodResult]
    skipped: dict[str, str] = field(default_factory=dict)
    misclassified_only: bool = False
    controls: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def maps(self) -> dict[str, Tensor]:
        return {name: r.maps for name, r in self.results.items()}

    @property
    def signed(self) -> dict[str, bool]:
        return {name: r.signed for name, r in self.results.items()}

    @property
    def scores(self) -> dict[str, dict[str, Any]]:
        return {name: r.scores for name, r in self.results.items()}

    def to_json(self) -> dict[str, Any]:
        """The JSON record (``explanations.json``): selection, scores, skipped methods."""
        s = self.selection
        return {
            "model": self.model,
            "device": self.device,
            "classes": self.classes,
            "ids": s.ids,
            "labels": s.labels,
            "preds": s.preds,
            "confidences": s.confidences,
            "targets": s.targets,
            "files": s.files,
            "top": [[[c, p] for c, p in row] for row in s.top],
            "misclassified_only": self.misclassified_only,
            "grid": EXPLANATIONS_PNG,
            "methods": self.scores,
            "controls": self.controls,
            "skipped": self.skipped,
        }

    def draw_grid(self, path: Path, max_rows: int = 16) -> Path:
        """The PNG grid: one row per image, the input, then each method's overlay."""
        s = self.selection
        return explanation_grid(s.images, self.maps, self.signed, s.labels, s.preds, self.classes,
                                path, confidences=s.confidences, max_rows=max_rows,
                                names=s.files or None, targets=s.targets)

    def save(self, folder: str | Path) -> Path:
        """Write ``explanations.json``, ``explanations.pt`` (maps and images, loadable with
        ``weights_only=True``) and ``explanations.png`` into ``folder``; return the JSON path."""
        folder = Path(folder)
        self.draw_grid(folder / EXPLANATIONS_PNG)
        buffer = io.BytesIO()
        torch.save({"format": 1, "ids": torch.tensor(self.selection.ids, dtype=torch.long),
                    "images": self.selection.images, "maps": self.maps}, buffer)
        atomic_write_bytes(folder / EXPLANATIONS_MAPS, buffer.getvalue())
        return atomic_write_json(folder / EXPLANATIONS_JSON, self.to_json())


def spread_over_classes(labels: Tensor, n: int) -> Tensor:
    """Indices of ``n`` images taken round-robin over the classes, each class in its own order.

    The first image of each class, then the second of each, and so on, so that any ``n`` gives a
    class-balanced, deterministic choice whether the split is shuffled (CIFAR batches) or
    grouped by class (an ImageFolder tree).
    """
    labels = labels.cpu()
    if len(labels) == 0:
        return torch.zeros(0, dtype=torch.long)
    order = torch.argsort(labels, stable=True)
    grouped = labels[order]
    first_of_class = torch.searchsorted(grouped, grouped, right=False)
    rank_in_class = torch.arange(len(grouped)) - first_of_class
    key = rank_in_class * (int(labels.max()) + 1) + grouped
    return order[torch.argsort(key, stable=True)][:n]


def select_images(
    model: nn.Module,
    data: DataBundle,
    device: torch.device,
    *,
    n_images: int = 16,
    ids: Sequence[int] | None = None,
    misclassified: bool = False,
) -> Selection:
    """Choose test images, with the model's predictions and confidences: ``ids`` if given, else
    ``n_images`` spread over the classes (:func:`spread_over_classes`), only misclassified ones
    with ``misclassified``.

    Raises:
        XaikitError: an id out of range, ``n_images < 1``, or no misclassified image.
    """
    total = len(data.test_labels)
    probs = None  # of the chosen images; computed once
    if ids:
        bad = [i for i in ids if not 0 <= i < total]
        if bad:
            raise XaikitError(f"test image ids must be in 0..{total - 1}, got {bad}")
        chosen = torch.as_tensor(list(ids), dtype=torch.long)
    elif n_images < 1:
        raise XaikitError("--images must be at least 1")
    elif misclassified:
        all_probs = predict_sharded(model, data.test_images, data.mean, data.std, device=device).cpu()
        wrong = (all_probs.argmax(1) != data.test_labels.cpu()).nonzero().flatten()
        if len(wrong) == 0:
            raise XaikitError("the model classifies every test image correctly; nothing to show")
        chosen = wrong[spread_over_classes(data.test_labels.cpu()[wrong], n_images)]
        probs = all_probs[chosen]
    else:
        chosen = spread_over_classes(data.test_labels, n_images)
    images = data.test_images.cpu()[chosen]
    if probs is None:
        probs = predict(model, images, data.mean, data.std, device=device).cpu()
    return _selection(chosen.tolist(), images, data.test_labels.cpu()[chosen].tolist(), probs)


def select_files(model: nn.Module, data: DataBundle, device: torch.device,
                 files: Sequence[str | Path]) -> Selection:
    """A user's image files (any size and mode), as the model takes them, with its predictions."""
    from xaikit.images import read_image_files

    images = read_image_files(files, data.test_images.shape[1:])
    probs = predict(model, images, data.mean, data.std, device=device).cpu()
    selection = _selection(list(range(len(images))), images, [UNKNOWN] * len(images), probs)
    return Selection(selection.ids, images, selection.labels, selection.preds,
                     selection.confidences, selection.targets, [str(f) for f in files],
                     selection.top)


def _selection(ids: list[int], images: Tensor, labels: list[int], probs: Tensor) -> Selection:
    k = min(3, probs.shape[1])
    top_p, top_c = probs.topk(k, dim=1)
    preds = probs.argmax(1).tolist()
    return Selection(
        ids=ids, images=images, labels=labels, preds=preds,
        confidences=probs.max(1).values.tolist(), targets=list(preds),
        top=[list(zip(c.tolist(), p.tolist())) for c, p in zip(top_c, top_p)],
    )


def choose_targets(selection: Selection, target: str | int | None, classes: Sequence[str]) -> Selection:
    """The selection explaining ``target``: ``None``/``"pred"`` the predictions, ``"true"`` the
    labels, a class index or a class name that class for every image.

    Raises:
        XaikitError: an unknown class, or ``"true"`` for images without labels.
    """
    if target is None or target == "pred":
        return selection
    if target == "true":
        if UNKNOWN in selection.labels:
            raise XaikitError("--target true needs labels; the user's image files have none")
        return selection.with_targets(selection.labels)
    if isinstance(target, str) and target in classes:
        index = list(classes).index(target)
    else:
        try:
            index = int(target)
        except (TypeError, ValueError):
            names = ", ".join(repr(c) for c in list(classes)[:10])
            raise XaikitError(
                f"--target {target!r} is no class; use pred, true, an index 0..{len(classes) - 1} "
                f"or a class name ({names}{', ...' if len(classes) > 10 else ''})"
            ) from None
        if not 0 <= index < len(classes):
            raise XaikitError(f"--target {index} is out of range 0..{len(classes) - 1}")
    return selection.with_targets([index] * len(selection))


def build_method(name: str, model: nn.Module, layer: str | None = None,
                 options: dict[str, Any] | None = None) -> Attribution:
    """The registered method ``name`` bound to ``model`` (``layer`` only for CAM methods; other
    methods ignore it), with its ``options`` (constructor keywords, see
    :func:`xaikit.options.method_options`).

    Raises:
        NotApplicableError: the method cannot explain this model.
        XaikitError: an unknown method or layer name.
    """
    cls = get_attribution(name)
    return cls(model, layer=layer if cls.uses_layer else None, **(options or {}))


def compute_maps(
    method: Attribution, x: Tensor, targets: Tensor, batch_size: int,
    progress: ProgressFn | None = None,
) -> tuple[Tensor, float]:
    """Maps ``[N, H, W]`` (CPU) of ``method`` in batches of ``batch_size``, and the seconds taken."""
    if batch_size < 1:
        raise XaikitError("--batch-size must be at least 1")
    chunks = []
    started = time.perf_counter()
    for start in range(0, len(x), batch_size):
        chunks.append(method(x[start:start + batch_size], targets[start:start + batch_size]))
        if progress:
            progress(method.name, min(start + batch_size, len(x)), len(x))
    maps = torch.cat(chunks)
    if maps.device.type == "cuda":
        torch.cuda.synchronize(maps.device)
    return maps.cpu(), time.perf_counter() - started


def explain(
    run: Run,
    methods: Sequence[str] | None = None,
    *,
    n_images: int = 16,
    ids: Sequence[int] | None = None,
    misclassified: bool = False,
    layer: str | None = None,
    data_path: str | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 64,
    sanity_images: int = 8,
    progress: ProgressFn | None = None,
    model: nn.Module | None = None,
    data: DataBundle | None = None,
    files: Sequence[str | Path] | None = None,
    target: str | int | None = None,
    method_options: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
) -> Explanation:
    """Maps and scores of each method on a run's test images (or on image files); nothing is
    written.

    Args:
        run: A run (:func:`xaikit.run.load_run`).
        methods: Registered method names (default: gradcam and integrated-gradients;
            ``["all"]``: every registered method).
        n_images: How many test images (round-robin over the classes).
        ids: Explicit test image indices (override ``n_images``).
        misclassified: Only images the model gets wrong.
        layer: Layer for CAM methods (default: the model spec's target layer).
        data_path: Data location, when it differs from the one recorded in the run.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: Images per method call.
        sanity_images: Images used by the (costly) randomisation check; 0 skips it.
        progress: ``progress(method, done, total)`` after each batch.
        model, data: The run's model and data when the caller already loaded them.
        files: The user's image files to explain instead of test images.
        target: The class explained: ``None``/``"pred"`` the prediction, ``"true"`` the
            label, or a class index or name (see :func:`choose_targets`).
        method_options: ``{method: {option: value}}`` for the methods' constructors.
        seed: Seed of every random draw of the scorecard (the same for every method).

    Raises:
        XaikitError: an unknown method or layer, bad ids, or no method that can apply.
    """
    names = resolve_methods(methods, DEFAULT_METHODS)
    if sanity_images < 0:
        raise XaikitError("--sanity-images must be >= 0")
    if batch_size < 1:
        raise XaikitError("--batch-size must be at least 1")
    dev = rank_device(device)
    model = load_model(run, dev) if model is None else model
    data = load_data(run, data_path) if data is None else data
    if files:
        selection = select_files(model, data, dev, files)
    else:
        selection = select_images(model, data, dev, n_images=n_images, ids=ids,
                                  misclassified=misclassified)
    selection = choose_targets(selection, target, run.classes)
    x = selection.inputs(data, dev)
    targets = torch.as_tensor(selection.targets, device=dev)
    settings = ScorecardSettings(data_std=tuple(float(v) for v in data.std),
                                 sanity_images=sanity_images, seed=seed)
    options = method_options or {}
    registered = set(list_attributions())
    control_names = [c for c in CONTROLS if c in registered]
    results: dict[str, MethodResult] = {}
    controls: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    shared: dict[Any, Any] = {}  # what the scorecards of these images share (random references)
    # The controls first: every method's scorecard is compared with them on the same images.
    # Under torchrun each process scores every world_size-th block of the images (the blocks
    # of xaikit.metrics.scorecard.image_blocks, with their own random draws), and every process
    # gathers every block, so the scorecards are those of one process.
    others = [n for n in names if n not in control_names]
    with agree_on_errors():
        _explain_methods([*control_names, *others], names, control_names, model, x, targets, layer,
                         options, batch_size, settings, shared, progress, results, controls,
                         skipped)
    if not results:
        reasons = "; ".join(f"{m}: {why}" for m, why in skipped.items())
        raise NotApplicableError(f"no attribution method can explain {run.spec.name!r} ({reasons})")
    return Explanation(run.spec.name, run.classes, str(dev), selection, results, skipped,
                       misclassified, controls={c: card for c, card in controls.items() if c not in results})


def _explain_methods(order: Sequence[str], names: Sequence[str], control_names: Sequence[str],
                     model: nn.Module, x: Tensor, targets: Tensor, layer: str | None,
                     options: dict[str, dict[str, Any]], batch_size: int,
                     settings: ScorecardSettings, shared: dict[Any, Any],
                     progress: ProgressFn | None, results: dict[str, MethodResult],
                     controls: dict[str, dict[str, Any]], skipped: dict[str, str]) -> None:
    """Maps and scorecards of the methods ``order`` (controls first), into ``results``,
    ``controls`` and ``skipped``; this process computes its blocks of the images."""
    blocks = image_blocks(len(x))
    mine = list(range(rank(), len(blocks), world_size()))
    for name in order:
        try:
            method = build_method(name, model, layer, options.get(name))
        except NotApplicableError as exc:
            if name in names:
                skipped[name] = str(exc)
            continue
        maps, seconds, evaluations, reason = _block_maps(method, x, targets, blocks, mine, batch_size,
                                                         progress)
        if reason is not None:  # some methods can only tell from a forward pass
            if name in names:
                skipped[name] = reason
            continue
        plan = plan_checks(model, method, x[:1], len(x), evaluations / len(x), settings)
        scored = [score_block(model, method, x[blocks[i].start:blocks[i].stop],
                              targets[blocks[i].start:blocks[i].stop],
                              maps[i].to(x.device), start=blocks[i].start, block=i, plan=plan,
                              settings=settings, shared=shared)
                  for i in mine]
        if world_size() > 1:
            parts = all_gather_object((maps, scored))
            maps = {i: m for part in parts for i, m in part[0].items()}
            scored = [block for part in parts for block in part[1]]
        others = {c: card for c, card in controls.items() if c != name}
        card = summarize(method, scored, plan, settings, seconds, others)
        card["scale"] = method.scale
        if name in control_names:
            controls[name] = card
        if name in names:
            all_maps = torch.cat([maps[i] for i in range(len(blocks))])
            results[name] = MethodResult(name, all_maps, card, method.signed, method.layer_name)
        if progress:
            progress(f"{name} scored", len(x), len(x))


def _block_maps(method: Attribution, x: Tensor, targets: Tensor, blocks: Sequence[range],
                mine: Sequence[int], batch_size: int, progress: ProgressFn | None,
                ) -> tuple[dict[int, Tensor], float, float, str | None]:
    """This process's maps ``{block: [n, H, W]}`` (CPU), and over all processes: the seconds
    they took, the model evaluations they cost and why the method cannot apply (or ``None``)."""
    maps: dict[int, Tensor] = {}
    seconds, reason, counted = 0.0, None, [0]
    try:
        with module_mode(method.model, training=False):
            method.num_classes(x)  # once per process, so not counted: the count is the blocks'
        with count_evaluations(method.model) as counted:
            for i in mine:
                r = blocks[i]

                def report(name: str, done: int, _total: int, offset: int = r.start) -> None:
                    if progress:
                        progress(name, offset + done, len(x))

                maps[i], took = compute_maps(method, x[r.start:r.stop], targets[r.start:r.stop],
                                             batch_size, report)
                seconds += took
    except NotApplicableError as exc:
        reason = str(exc)
    evaluations = float(counted[0])
    if world_size() > 1:
        parts = all_gather_object((seconds, evaluations, reason))
        seconds = sum(p[0] for p in parts)
        evaluations = sum(p[1] for p in parts)
        reason = next((p[2] for p in parts if p[2] is not None), None)
    return maps, seconds, evaluations, reason


def explain_run(
    run_path: str | Path,
    methods: Sequence[str] | None = None,
    *,
    out: str | Path | None = None,
    **options: Any,
) -> Explanation:
    """:func:`explain` a run folder and save the result (default: into the run folder).

    ``options`` are those of :func:`explain`.
    """
    run = load_run(run_path)
    folder = check_output_folder(out) if out else run.path
    explanation = explain(run, methods, **options)
    if is_main():
        explanation.save(folder)
    return explanation


def load_explanation(run: Run, folder: Path) -> Explanation:
    """Read what :meth:`Explanation.save` wrote in ``folder`` for ``run``.

    Raises:
        RunError: a file is missing, unreadable, of another model or classes, or its maps do
            not match its record.
    """
    record = validate_json(_RECORD_ADAPTER, read_text(folder / EXPLANATIONS_JSON),
                           str(folder / EXPLANATIONS_JSON))
    path = folder / EXPLANATIONS_MAPS
    n = len(record["ids"])
    if any(len(record[key]) != n for key in ("labels", "preds", "confidences", "targets", "top")):
        raise RunError(f"{folder / EXPLANATIONS_JSON}: ids, labels, preds and confidences differ in length")
    if any(v >= len(run.classes) for v in (*record["labels"], *record["preds"], *record["targets"])):
        raise RunError(f"{folder / EXPLANATIONS_JSON}: a label beyond the run's classes")
    if record["model"] != run.spec.name:
        raise RunError(f"{folder / EXPLANATIONS_JSON} is not an explanation of {run.spec.name!r}")
    if record["classes"] != run.classes:
        raise RunError(f"{folder / EXPLANATIONS_JSON} has other classes than the run")
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one RunError line
        raise RunError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    try:
        ids = [int(i) for i in record["ids"]]
        n = len(ids)
        images = stored["images"]
        maps = {str(k): v.float() for k, v in stored["maps"].items()}
        scores = record["methods"]
        if stored["ids"].tolist() != ids or images.dtype != torch.uint8 or len(images) != n:
            raise ValueError("images do not match the record")
        if set(maps) != set(scores) or any(m.shape != (n, *images.shape[-2:]) for m in maps.values()):
            raise ValueError("maps do not match the record")
        if images.ndim != 4 or not all(bool(m.isfinite().all()) for m in maps.values()):
            raise ValueError("images or maps are malformed or not finite")
        selection = Selection(ids, images, list(record["labels"]), list(record["preds"]),
                              list(record["confidences"]), list(record["targets"]),
                              list(record["files"]), [[(c, p) for c, p in row] for row in record["top"]])
        results = {
            name: MethodResult(name, maps[name], dict(scores[name]), bool(scores[name]["signed"]),
                               scores[name].get("layer"))
            for name in scores
        }
        return Explanation(run.spec.name, run.classes, record["device"], selection, results,
                           record["skipped"], record["misclassified_only"],
                           controls={k: dict(v) for k, v in record["controls"].items()})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RunError(f"{folder / EXPLANATIONS_JSON} does not fit {path}: {exc}") from None
