"""``xaikit explain``: image choice, the JSON record, the grid, and user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from xaikit.cli import app
from xaikit.errors import UnknownNameError, XaikitError
from xaikit.registry import get_attribution
from xaikit.explain import explain_run, load_explanation, spread_over_classes
from xaikit.hookspecs import hookimpl
from xaikit.plugins import make_plugin_manager, set_plugin_manager
from xaikit.specs import ModelSpec, Recipe
from xaikit.testing import TinyConvNet
from xaikit.run import RunConfig, load_run
from xaikit.train import train

SCORE_KEYS = {"metrics", "verdicts", "headline", "versus", "randomization", "seconds",
              "seconds_per_image", "layer", "signed", "scale"}
METRIC_KEYS = {"road_morf", "road_lerf", "road_combined", "deletion", "insertion",
               "deletion_random", "insertion_random", "infidelity", "sensitivity_max", "sparseness",
               "complexity", "randomization_rho", "randomization_rho_abs", "random_logit_rho", "emprt"}


class TinyModels:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("tiny-explain", lambda **kw: TinyConvNet(width=6, **kw), "act", recipe=Recipe(epochs=1, batch_size=20)))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    pm = make_plugin_manager()
    pm.register(TinyModels(), name="tiny-explain-models")
    set_plugin_manager(pm)
    torch.manual_seed(0)
    folder = train(RunConfig("tiny-explain", dataset="synthetic", subset=100, device="cpu"),
                   tmp_path_factory.mktemp("explain") / "run", show_progress=False)
    yield folder
    set_plugin_manager(None)


def test_images_are_taken_round_robin_over_the_classes():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])  # grouped by class, as in an ImageFolder
    assert spread_over_classes(labels, 5).tolist() == [0, 3, 5, 1, 4]
    assert sorted(spread_over_classes(labels, 100).tolist()) == list(range(9))
    shuffled = torch.tensor([2, 0, 1, 0, 2])
    assert spread_over_classes(shuffled, 3).tolist() == [1, 2, 0]


def test_explain_writes_scores_per_method_and_a_grid(run: Path):
    explanation = explain_run(run, ["gradcam", "integrated-gradients"], n_images=6, device="cpu")
    record = explanation.to_json()
    assert len(record["ids"]) == 6 and len(set(record["labels"])) == 6  # one image per class
    assert set(record["methods"]) == {"gradcam", "integrated-gradients"}
    for name, scores in record["methods"].items():
        assert SCORE_KEYS <= set(scores), name
        assert METRIC_KEYS <= set(scores["metrics"]), name
        for key in ("road_combined", "deletion", "insertion"):
            m = scores["metrics"][key]
            assert m["low"] <= m["mean"] <= m["high"] and m["n"] == 6
        assert {v["verdict"] for v in scores["verdicts"].values()} <= {"pass", "fail", "uncertain"}
        # every method is compared with each control on the same images
        assert set(scores["headline"]) == {"random", "sobel", "center"}
        assert scores["headline"]["random"]["faithfulness"] in ("yes", "no", "undecided")
    assert set(record["controls"]) == {"random", "sobel", "center"}
    assert "completeness_gap" in record["methods"]["integrated-gradients"]["metrics"]
    assert "completeness_gap" not in record["methods"]["gradcam"]["metrics"]
    assert record["methods"]["gradcam"]["layer"] == "act"
    assert json.loads((run / "explanations.json").read_text()) == json.loads(json.dumps(record))
    assert (run / "explanations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # what was computed is returned, and what was saved reads back the same
    assert explanation.maps["gradcam"].shape == (6, 32, 32)
    again = load_explanation(load_run(run), run)
    assert again.selection.ids == explanation.selection.ids
    for name in ("gradcam", "integrated-gradients"):
        torch.testing.assert_close(again.maps[name], explanation.maps[name])
    assert json.loads(json.dumps(again.to_json())) == json.loads(json.dumps(record))


def test_misclassified_only_and_explicit_ids(run: Path, tmp_path: Path):
    wrong = explain_run(run, ["gradcam"], n_images=4, misclassified=True, out=tmp_path, device="cpu").to_json()
    assert wrong["misclassified_only"] and wrong["ids"]
    assert all(label != pred for label, pred in zip(wrong["labels"], wrong["preds"]))
    chosen = explain_run(run, ["gradcam"], ids=[3, 1], out=tmp_path, device="cpu").to_json()
    assert chosen["ids"] == [3, 1]
    with pytest.raises(XaikitError, match="test image ids must be in 0..19"):
        explain_run(run, ["gradcam"], ids=[20], out=tmp_path, device="cpu")


def test_an_unknown_method_lists_the_registered_ones(run: Path):
    with pytest.raises(UnknownNameError, match="unknown attribution method 'nope'; registered: .*gradcam"):
        explain_run(run, ["nope"], device="cpu")


def test_cli_prints_the_table_and_the_output_paths(run: Path, tmp_path: Path):
    result = CliRunner().invoke(app, ["explain", str(run), "--method", "gradcam", "--images", "3",
                                      "--out", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-2:] == [str(tmp_path / "explanations.png"), str(tmp_path / "explanations.json")]
    assert "gradcam" in result.stdout


def test_sanity_images_zero_skips_the_randomisation_check(run: Path, tmp_path: Path):
    result = CliRunner().invoke(app, ["explain", str(run), "--method", "saliency", "--images", "3",
                                      "--sanity-images", "0", "--out", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "explanations.json").read_text())["methods"]["saliency"]
    assert "randomization_rho" not in scores["metrics"] and "deletion" in scores["metrics"]


class Flat(torch.nn.Module):
    """A model with no spatial layer: flatten, linear."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3 * 32 * 32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class FlatModels:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("flat", Flat, None, recipe=Recipe(epochs=1, batch_size=20)))


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory: pytest.TempPathFactory):
    pm = make_plugin_manager()
    pm.register(FlatModels(), name="flat-models")
    set_plugin_manager(pm)
    folder = train(RunConfig("flat", dataset="synthetic", subset=40, device="cpu"),
                   tmp_path_factory.mktemp("flat") / "run", show_progress=False)
    yield folder
    set_plugin_manager(None)


def test_methods_that_cannot_apply_are_skipped_with_a_note(flat_run: Path, tmp_path: Path):
    """Before: the default `explain` and `--method all` failed outright on the CAM methods of a
    model with no spatial layer."""
    result = CliRunner().invoke(app, ["explain", str(flat_run), "--images", "3", "--out",
                                      str(tmp_path), "--device", "cpu", "--sanity-images", "0"])
    assert result.exit_code == 0, result.output
    assert "skipped gradcam" in result.stderr and "no spatial layer" in result.stderr
    record = json.loads((tmp_path / "explanations.json").read_text())
    assert list(record["methods"]) == ["integrated-gradients"]
    assert "no spatial layer" in record["skipped"]["gradcam"]
    every = explain_run(flat_run, ["all"], n_images=2, out=tmp_path, device="cpu", sanity_images=0)
    assert every.results
    # a linear model has no spatial layer for the layer methods and no nn.ReLU for the methods
    # that change ReLU's backward pass (their map would be the plain gradient)
    relu_methods = {"guided-backprop", "deconvolution"}
    assert relu_methods <= set(every.skipped)
    for name, why in every.skipped.items():
        assert get_attribution(name).uses_layer or (name in relu_methods and "nn.ReLU" in why), (name, why)


def test_only_inapplicable_methods_is_one_clear_error(flat_run: Path, tmp_path: Path):
    result = CliRunner().invoke(app, ["explain", str(flat_run), "--method", "gradcam", "--out",
                                      str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: no attribution method can explain 'flat'")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def tiny_pm(plugin_manager):
    plugin_manager.register(TinyModels(), name="tiny-explain-models")
    return plugin_manager


def test_explain_the_users_own_image_files(run: Path, tiny_pm, tmp_path: Path):
    from PIL import Image

    rgba = tmp_path / "cat.png"
    Image.new("RGBA", (50, 40), (200, 30, 30, 128)).save(rgba)
    grey = tmp_path / "boat.jpg"
    Image.new("L", (17, 90), 99).save(grey)
    result = CliRunner().invoke(app, ["explain", str(run), "--image", str(rgba), "--image", str(grey),
                                      "--method", "gradcam", "--out", str(tmp_path / "out"),
                                      "--device", "cpu", "--sanity-images", "0"])
    assert result.exit_code == 0, result.output
    assert "Predictions" in result.stdout and "cat.png" in result.stdout and "%" in result.stdout
    record = json.loads((tmp_path / "out" / "explanations.json").read_text())
    assert record["files"] == [str(rgba), str(grey)] and record["labels"] == [-1, -1]
    assert record["targets"] == record["preds"] and len(record["top"][0]) == 3
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    result = CliRunner().invoke(app, ["explain", str(run), "--image", str(bad), "--device", "cpu"])
    assert result.exit_code == 2 and "is not an image xaikit can read" in result.stderr


def test_target_chooses_the_class_explained(run: Path, tiny_pm, tmp_path: Path):
    classes = load_run(run).classes
    by_name = explain_run(run, ["gradcam"], n_images=3, target=classes[4], out=tmp_path,
                          device="cpu", sanity_images=0)
    assert by_name.selection.targets == [4, 4, 4]
    by_index = explain_run(run, ["gradcam"], n_images=3, target="4", out=tmp_path, device="cpu",
                           sanity_images=0)
    torch.testing.assert_close(by_index.maps["gradcam"], by_name.maps["gradcam"])
    true = explain_run(run, ["gradcam"], n_images=3, target="true", out=tmp_path, device="cpu",
                       sanity_images=0)
    assert true.selection.targets == true.selection.labels
    for target, words in (("99", "out of range"), ("zebra", "is no class")):
        result = CliRunner().invoke(app, ["explain", str(run), "--target", target, "--device", "cpu"])
        assert result.exit_code == 2 and words in result.stderr


def test_method_args_are_checked_against_the_methods_options(run: Path, tiny_pm, tmp_path: Path):
    ok = CliRunner().invoke(app, ["explain", str(run), "-m", "integrated-gradients", "--images", "2",
                                  "--method-arg", "integrated-gradients.n_steps=4", "--out",
                                  str(tmp_path), "--device", "cpu", "--sanity-images", "0"])
    assert ok.exit_code == 0, ok.output
    for arg, words in (
        ("integrated-gradients.steps=4", "unknown option 'steps' of method 'integrated-gradients'; options: n_steps: int = 32"),
        ("integrated-gradients.n_steps=many", "option 'n_steps' of method 'integrated-gradients' takes int"),
        ("gradcam.x=1", "method 'gradcam' is not among this command's methods"),
        ("n_steps=4", "takes METHOD.KEY=VALUE"),
    ):
        result = CliRunner().invoke(app, ["explain", str(run), "-m", "integrated-gradients",
                                          "--method-arg", arg, "--device", "cpu"])
        assert result.exit_code == 2 and words in result.stderr, result.stderr


def test_methods_show_lists_options_and_the_paper(run: Path):
    result = CliRunner().invoke(app, ["methods", "show", "integrated-gradients"])
    assert result.exit_code == 0
    assert "n_steps: int = 32" in result.stdout and "Integrated gradients" in result.stdout
