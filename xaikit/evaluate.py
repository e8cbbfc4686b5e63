"""Evaluation of a trained run: predictions, class-wise precision/recall/F1, confusion matrix.

For class ``c`` with true positives ``TP``, false positives ``FP`` and false negatives ``FN``:
``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
``f1 = 2 * precision * recall / (precision + recall)`` (each 0 where its denominator is 0),
``support = TP + FN``. ``macro_avg`` is the unweighted mean over classes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import pydantic
from typing_extensions import NotRequired, TypedDict

import torch
from torch import nn

from xaikit.atomic import atomic_write_json
from xaikit.data import normalize
from xaikit.device import autocast, resolve_device
from xaikit.distributed import all_gather_object, is_main, rank_device, shard_bounds, world_size
from xaikit.modules import model_device, module_mode
from xaikit.run import METRICS_NAME, Run, load_data, load_model, now_iso, read_text, validate_json


@torch.no_grad()
def _log_probs(
    model: nn.Module,
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    batch_size: int,
    flip: bool,
    bf16: bool,
    channels_last: bool,
    device: torch.device,
    shift: int = 0,
) -> torch.Tensor:
    """Log-softmax ``[N, K]`` (float32, on ``device``) of the model on uint8 ``images``,
    translated by ``shift`` pixels down-right (up-left if negative, reflect padding), then
    mirrored with ``flip``."""
    outputs = []
    with module_mode(model, training=False):
        for start in range(0, images.shape[0], batch_size):
            x = normalize(images[start : start + batch_size].to(device, non_blocking=True), mean, std)
            if shift:
                k, (h, w) = abs(shift), x.shape[-2:]
                padded = nn.functional.pad(x, (k, k, k, k), mode="reflect")
                at = 0 if shift > 0 else 2 * k
                x = padded[..., at : at + h, at : at + w]
            if flip:
                x = x.flip(-1)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, bf16):
                outputs.append(model(x).float().log_softmax(dim=1))
    if not outputs:
        return torch.zeros(0, 0, device=device)
    return torch.cat(outputs)


def predict(
    model: nn.Module,
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    tta: bool = False,
    tta_shift: int = 0,
    batch_size: int = 1024,
    bf16: bool = False,
    channels_last: bool = False,
    device: str | torch.device | None = None,
    log: bool = False,
) -> torch.Tensor:
    """Class probabilities ``[N, K]`` (float32, on the model's device) for uint8 images.

    The one inference path of xaikit: training's per-epoch test, ``evaluate``, ``explain`` and
    ``report`` all call it. Images are normalised with ``mean``/``std`` (0..1 scale) batch by
    batch on the device, with no host synchronisation per batch; the model runs in eval mode
    and every module's train/eval flag is restored afterwards.

    Args:
        model: The classifier (logits out).
        images: ``uint8 [N, C, H, W]`` on any device.
        mean, std: Per-channel normalisation.
        tta: Flip test-time augmentation: the mean of the softmax of each image and of its
            mirror image, ``p = (softmax(f(x)) + softmax(f(flip(x)))) / 2``.
        tta_shift: With ``tta`` and ``k > 0``, multi-crop TTA (airbench's, Jordan 2024): the
            flip pair above weighs 1/2, and the flip pairs of the image translated by ``k``
            pixels down-right and up-left (reflect padding) 1/4 each.
        batch_size: Images per forward pass.
        bf16: bfloat16 autocast.
        channels_last: Feed NHWC tensors (for a model trained in channels_last).
        device: Where to compute (default: the model's device; the model is moved there).
        log: Return ``log p`` instead of ``p`` (exact for the loss: ``log_softmax``, and
            ``logsumexp`` of both views minus ``log 2`` with ``tta``).
    """
    device = model_device(model) if device is None else resolve_device(device)
    model.to(device)
    kwargs = dict(batch_size=batch_size, bf16=bf16, channels_last=channels_last, device=device)
    if tta_shift < 0:
        raise ValueError(f"tta_shift must be >= 0, got {tta_shift}")
    if not tta:
        log_p = _log_probs(model, images, mean, std, flip=False, **kwargs)
        return log_p if log else log_p.exp()
    parts = [_log_probs(model, images, mean, std, flip=flip, shift=shift, **kwargs) + math.log(weight)
             for shift, flip, weight in tta_views(tta_shift)]
    log_p = torch.logsumexp(torch.stack(parts), dim=0)
    return log_p if log else log_p.exp()


def tta_views(shift: int) -> list[tuple[int, bool, float]]:
    """The test-time augmentation views of :func:`predict` as ``(shift, flip, weight)``: the image
    and its mirror (1/2 each), or with ``shift > 0`` those two at 1/4 each and both translated by
    ``shift`` pixels down-right and up-left at 1/8 each."""
    crops = [(0, 0.5), (shift, 0.25), (-shift, 0.25)] if shift else [(0, 1.0)]
    return [(s, flip, weight / 2) for s, weight in crops for flip in (False, True)]


def predict_sharded(
    model: nn.Module,
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    **kwargs: Any,
) -> torch.Tensor:
    """:func:`predict`, with the images shared out over the torchrun processes.

    Each process predicts a contiguous share of whole batches (``batch_size``, default 1024)
    on its device and every process gets all the results, in order, on its device. Each batch
    is the one a single process would run, so the result equals :func:`predict`'s (bit for bit
    with the same number of threads per process). In a plain process it is :func:`predict`.
    """
    if world_size() == 1:
        return predict(model, images, mean, std, **kwargs)
    batch = int(kwargs.get("batch_size", 1024))
    first, last = shard_bounds(-(-len(images) // batch))
    mine = images[first * batch:last * batch]
    part = predict(model, mine, mean, std, **kwargs).cpu() if len(mine) else None
    parts = [p for p in all_gather_object(part) if p is not None]  # a share may be empty
    device = model_device(model) if kwargs.get("device") is None else resolve_device(kwargs["device"])
    return torch.cat(parts).to(device)


def evaluate_split(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    tta: bool = False,
    **kwargs: Any,
) -> dict[str, float]:
    """Test loss (plain cross-entropy, no label smoothing) and accuracy; ``acc_tta`` with ``tta``.

    ``kwargs`` go to :func:`predict`.
    """
    log_p = predict(model, images, mean, std, log=True, **kwargs)
    labels = labels.to(log_p.device)
    result = {
        "loss": nn.functional.nll_loss(log_p, labels).item(),
        "acc": (log_p.argmax(dim=1) == labels).float().mean().item(),
    }
    if tta:
        tta_log_p = predict(model, images, mean, std, log=True, tta=True, **kwargs)
        result["acc_tta"] = (tta_log_p.argmax(dim=1) == labels).float().mean().item()
    return result


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, k: int) -> torch.Tensor:
    """``[k, k]`` int64 counts; row = true class, column = predicted class."""
    y_true = torch.as_tensor(y_true, dtype=torch.int64).cpu().reshape(-1)
    y_pred = torch.as_tensor(y_pred, dtype=torch.int64).cpu().reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.numel()} labels, y_pred {y_pred.numel()}")
    return torch.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def classification_report(
    y_true: torch.Tensor, y_pred: torch.Tensor, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support and their macro average.

    Returns:
        ``{"accuracy", "per_class": {name: {"precision", "recall", "f1", "support"}},
        "macro_avg": {"precision", "recall", "f1", "support"}, "confusion_matrix"}``.
    """
    k = len(classes)
    matrix = confusion_matrix(y_true, y_pred, k)
    true_positives = matrix.diag()
    predicted = matrix.sum(dim=0)
    actual = matrix.sum(dim=1)
    per_class: dict[str, dict[str, float | int]] = {}
    for c, name in enumerate(classes):
        precision = _ratio(true_positives[c], predicted[c])
        recall = _ratio(true_positives[c], actual[c])
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(actual[c])}
    macro = {
        key: sum(m[key] for m in per_class.values()) / k if k else 0.0
        for key in ("precision", "recall", "f1")
    }
    macro["support"] = int(actual.sum())
    return {
        "accuracy": _ratio(true_positives.sum(), matrix.sum()),
        "per_class": per_class,
        "macro_avg": macro,
        "confusion_matrix": matrix.tolist(),
    }


def evaluate_run(
    run: Run, *, data_path: str | None = None, device: str | torch.device = "auto", tta: bool = False
) -> dict[str, Any]:
    """Evaluate a run's checkpoint on its test split and write ``metrics.json`` into the run.

    Under torchrun the test images are shared out over the processes
    (:func:`predict_sharded`); every process gets the metrics, rank 0 writes the file.

    Returns:
        The metrics: ``accuracy``, ``per_class``, ``macro_avg``, ``confusion_matrix``,
        ``misclassified`` (test indices), ``loss``, ``num_test``, ``device``, ``evaluated``,
        and ``tta_accuracy`` and ``tta_views`` (2: the image and its mirror; 6: also shifted, where
        the recipe sets ``tta_shift``) with ``tta``.
    """
    device = rank_device(device)
    model = load_model(run, device)
    data = load_data(run, data_path)
    log_p = predict_sharded(model, data.test_images, data.mean, data.std, device=device, log=True)
    labels = data.test_labels.to(log_p.device)
    predicted = log_p.argmax(dim=1)
    metrics: dict[str, Any] = classification_report(labels, predicted, run.classes)
    metrics["loss"] = torch.nn.functional.nll_loss(log_p, labels).item()
    metrics["misclassified"] = (predicted != labels).nonzero().flatten().cpu().tolist()
    if tta:
        shift = run.config.recipe.tta_shift if run.config.recipe is not None else 0
        tta_probs = predict_sharded(model, data.test_images, data.mean, data.std, device=device,
                                    tta=True, tta_shift=shift)
        metrics["tta_accuracy"] = (tta_probs.argmax(dim=1) == labels).float().mean().item()
        metrics["tta_views"] = len(tta_views(shift))
    metrics["num_test"] = int(labels.shape[0])
    metrics["device"] = str(device)
    metrics["evaluated"] = now_iso()
    if is_main():
        atomic_write_json(run.file(METRICS_NAME), metrics)
    return metrics


_STRICT = pydantic.ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


@pydantic.with_config(_STRICT)
class ClassScores(TypedDict):
    """Precision, recall, F1 and support of one class (or their macro average)."""

    precision: pydantic.confloat(ge=0, le=1)  # type: ignore[valid-type]
    recall: pydantic.confloat(ge=0, le=1)  # type: ignore[valid-type]
    f1: pydantic.confloat(ge=0, le=1)  # type: ignore[valid-type]
    support: pydantic.conint(ge=0)  # type: ignore[valid-type]


@pydantic.with_config(_STRICT)
class Metrics(TypedDict):
    """``metrics.json``: what :func:`evaluate_run` writes."""

    accuracy: pydantic.confloat(ge=0, le=1)  # type: ignore[valid-type]
    per_class: dict[str, ClassScores]
    macro_avg: ClassScores
    confusion_matrix: list[list[pydantic.conint(ge=0)]]  # type: ignore[valid-type]
    misclassified: list[pydantic.conint(ge=0)]  # type: ignore[valid-type]
    loss: float
    num_test: pydantic.conint(ge=0)  # type: ignore[valid-type]
    device: str
    evaluated: str
    tta_accuracy: NotRequired[pydantic.confloat(ge=0, le=1)]  # type: ignore[valid-type]
    tta_views: NotRequired[pydantic.conint(ge=2)]  # type: ignore[valid-type]


_METRICS_ADAPTER = pydantic.TypeAdapter(Metrics)


def read_metrics(path: Path, classes: Sequence[str]) -> Metrics:
    """``metrics.json`` validated against :class:`Metrics` and the run's ``classes`` (the
    per-class table and the confusion matrix must be of exactly those classes).

    Raises:
        RunError: one line naming the file and the first field that does not fit.
    """
    from xaikit.errors import RunError

    metrics = validate_json(_METRICS_ADAPTER, read_text(path), str(path))
    k = len(classes)
    if list(metrics["per_class"]) != list(classes):
        raise RunError(f"{path}: per_class: not the run's classes")
    if len(metrics["confusion_matrix"]) != k or any(len(row) != k for row in metrics["confusion_matrix"]):
        raise RunError(f"{path}: confusion_matrix: not {k} x {k}")
    if any(i >= metrics["num_test"] for i in metrics["misclassified"]):
        raise RunError(f"{path}: misclassified: an index beyond num_test")
    return metrics

