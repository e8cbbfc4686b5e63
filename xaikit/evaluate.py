"""Evaluation of a trained run: predictions, class-wise precision/recall/F1, confusion matrix.

For class ``c`` with true positives ``TP``, false positives ``FP`` and false negatives ``FN``:
``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
``f1 = 2 * precision * recall / (precision + recall)`` (each 0 where its denominator is 0),
``support = TP + FN``. ``macro_avg`` is the unweighted mean over classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

from xaikit.runs_io import write_json
from xaikit.train.env import now_iso, resolve_device
from xaikit.train.loop import flip_tta_probs, predict_logits

if TYPE_CHECKING:
    from xaikit.train.runs import Run

METRICS_NAME = "metrics.json"


@torch.no_grad()
def predict(
    model: nn.Module,
    images_uint8: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    device: str | torch.device,
    batch_size: int = 1024,
    tta: bool = False,
) -> torch.Tensor:
    """Class probabilities ``[N, K]`` (float32, on ``device``) for uint8 images ``[N, C, H, W]``.

    Images are normalised with ``mean``/``std`` (0..1 scale) batch by batch on ``device``;
    there is no host synchronisation per batch. With ``tta`` the result is the mean of the
    softmax of each image and of its horizontal mirror image.
    """
    device = resolve_device(device)
    model = model.to(device)
    kwargs = dict(batch_size=batch_size, device=device)
    logits = predict_logits(model, images_uint8, mean, std, **kwargs)
    if tta:
        return flip_tta_probs(model, images_uint8, mean, std, logits, **kwargs)
    return logits.softmax(dim=1)


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
    run: "Run", data_path: str | None = None, device: str | torch.device = "auto", tta: bool = False
) -> dict[str, Any]:
    """Evaluate a run's checkpoint on its test split and write ``metrics.json`` into the run.

    Returns:
        The metrics: ``accuracy``, ``per_class``, ``macro_avg``, ``confusion_matrix``,
        ``misclassified`` (test indices), ``loss``, ``num_test``, and ``tta_accuracy`` with ``tta``.
    """
    from xaikit.train.runs import load_model, load_run_data

    device = resolve_device(device)
    model = load_model(run, device)
    data = load_run_data(run, data_path)
    probs = predict(model, data.test_images, data.mean, data.std, device)
    labels = data.test_labels.to(probs.device)
    predicted = probs.argmax(dim=1)
    metrics: dict[str, Any] = classification_report(labels, predicted, run.classes)
    metrics["loss"] = torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
    metrics["misclassified"] = (predicted != labels).nonzero().flatten().cpu().tolist()
    if tta:
        tta_probs = predict(model, data.test_images, data.mean, data.std, device, tta=True)
        metrics["tta_accuracy"] = (tta_probs.argmax(dim=1) == labels).float().mean().item()
    metrics["num_test"] = int(labels.shape[0])
    metrics["device"] = str(device)
    metrics["evaluated"] = now_iso()
    write_json(Path(run.path) / METRICS_NAME, metrics)
    return metrics


def report_table(metrics: dict[str, Any], title: str = "Test set") -> Any:
    """A rich ``Table`` of per-class precision, recall, F1 and support, with the macro average."""
    from rich.table import Table

    table = Table("class", "precision", "recall", "f1", "support", title=title)
    for name, m in metrics["per_class"].items():
        table.add_row(name, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}", str(m["support"]))
    macro = metrics["macro_avg"]
    table.add_section()
    table.add_row("macro avg", f"{macro['precision']:.4f}", f"{macro['recall']:.4f}",
                  f"{macro['f1']:.4f}", str(macro["support"]))
    return table
