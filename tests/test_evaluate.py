"""Predictions, class-wise metrics against a hand-computed example, and evaluate_run."""

from __future__ import annotations

import json

import pytest
import torch

from xaikit.evaluate import classification_report, confusion_matrix, evaluate_run, predict
from xaikit.hookspecs import hookimpl
from xaikit.specs import ModelSpec, Recipe
from xaikit.testing import TinyConvNet
from xaikit.run import RunConfig, load_run
from xaikit.train import train


class TinyModels:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("tiny-eval", TinyConvNet, "conv", recipe=Recipe(epochs=1, batch_size=16, max_lr=0.01)))


def test_confusion_matrix_rows_are_true_classes():
    y_true = torch.tensor([0, 0, 1, 2, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 2, 0, 2])
    assert confusion_matrix(y_true, y_pred, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_classification_report_hand_computed():
    # true:  a a a b b c c c c d      (d is never predicted, so its precision is 0)
    # pred:  a a b b c c c a c a
    y_true = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    y_pred = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0, 2, 0])
    report = classification_report(y_true, y_pred, ["a", "b", "c", "d"])
    # a: TP 2, FP 2 (a c-image and the d-image), FN 1 -> P 2/4, R 2/3, F1 = 2*(1/2)(2/3)/(1/2+2/3) = 4/7
    # b: TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F1 1/2
    # c: TP 3, FP 1, FN 1 -> P 3/4, R 3/4, F1 3/4
    # d: TP 0, FP 0, FN 1 -> 0, 0, 0
    expected = {
        "a": (0.5, 2 / 3, 4 / 7, 3), "b": (0.5, 0.5, 0.5, 2),
        "c": (0.75, 0.75, 0.75, 4), "d": (0.0, 0.0, 0.0, 1),
    }
    for name, (p, r, f1, support) in expected.items():
        m = report["per_class"][name]
        assert m["precision"] == pytest.approx(p)
        assert m["recall"] == pytest.approx(r)
        assert m["f1"] == pytest.approx(f1)
        assert m["support"] == support
    assert report["accuracy"] == pytest.approx(6 / 10)
    assert report["macro_avg"]["precision"] == pytest.approx((0.5 + 0.5 + 0.75 + 0) / 4)
    assert report["macro_avg"]["recall"] == pytest.approx((2 / 3 + 0.5 + 0.75 + 0) / 4)
    assert report["macro_avg"]["f1"] == pytest.approx((4 / 7 + 0.5 + 0.75 + 0) / 4)
    assert report["macro_avg"]["support"] == 10
    assert report["confusion_matrix"][3] == [1, 0, 0, 0]


def test_predict_probabilities_and_flip_tta():
    model = TinyConvNet().eval()
    images = torch.randint(0, 256, (7, 3, 8, 8), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    probs = predict(model, images, mean, std, device="cpu", batch_size=3)
    assert probs.shape == (7, 10)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(7))
    x = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(probs, model(x).softmax(dim=1))
        expected_tta = (model(x).softmax(dim=1) + model(x.flip(-1)).softmax(dim=1)) / 2
    torch.testing.assert_close(predict(model, images, mean, std, device="cpu", tta=True), expected_tta)
    log_tta = predict(model, images, mean, std, tta=True, log=True)
    torch.testing.assert_close(log_tta, expected_tta.log())


def test_evaluate_run_writes_metrics(plugin_manager, tmp_path):
    plugin_manager.register(TinyModels(), name="tiny-eval-models")
    settings = RunConfig("tiny-eval", dataset="synthetic", subset=30, device="cpu")
    folder = train(settings, tmp_path / "run", show_progress=False)
    metrics = evaluate_run(load_run(folder), device="cpu", tta=True)
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["accuracy"] == pytest.approx(metrics["accuracy"])
    for key in ("accuracy", "per_class", "macro_avg", "confusion_matrix", "misclassified", "tta_accuracy"):
        assert key in saved
    n = saved["num_test"]
    matrix = torch.tensor(saved["confusion_matrix"])
    assert matrix.shape == (10, 10) and int(matrix.sum()) == n
    assert len(saved["misclassified"]) == n - int(matrix.diag().sum())
    assert saved["accuracy"] == pytest.approx(1 - len(saved["misclassified"]) / n)
    history = json.loads((folder / "history.json").read_text())
    assert saved["accuracy"] == pytest.approx(history[-1]["test_acc"])
