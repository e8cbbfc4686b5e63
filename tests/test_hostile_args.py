"""Arguments a user gets wrong, and the messages they then read: one `error:` line, exit 2.

Each case was a traceback, a silent default, or misleading advice before (issue 10).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from xaikit.cli import app
from xaikit.hookspecs import hookimpl
from xaikit.run import RunConfig
from xaikit.specs import ModelSpec, Recipe
from xaikit.testing import TinyConvNet
from xaikit.train import train


class Tiny:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("tiny-args", TinyConvNet, "conv", recipe=Recipe(epochs=1, batch_size=16)))


@pytest.fixture
def run(plugin_manager, tmp_path) -> Path:
    plugin_manager.register(Tiny(), name="tiny-args-models")
    return train(RunConfig("tiny-args", dataset="synthetic", subset=40, device="cpu"),
                 tmp_path / "run", show_progress=False)


def _one_error_line(result, words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert words in lines[0], lines[0]


TRAIN = ["train", "tiny-args", "--dataset", "synthetic", "--subset", "40", "--device", "cpu"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--weight-decay", "nan"], "--weight-decay must be a finite number"),
        (["--weight-decay", "inf"], "--weight-decay must be a finite number"),
        (["--max-lr", "inf"], "--max-lr must be a positive finite number"),
        (["--max-lr", "nan"], "--max-lr must be a positive finite number"),
        (["--label-smoothing", "nan"], "--label-smoothing must be a finite number"),
    ],
)
def test_non_finite_training_numbers(plugin_manager, tmp_path, extra, words):
    plugin_manager.register(Tiny(), name="tiny-args-models")
    result = CliRunner().invoke(app, [*TRAIN, "--out", str(tmp_path / "r"), *extra])
    _one_error_line(result, words)
    assert not (tmp_path / "r").exists()


def test_subset_zero_is_not_silently_the_full_set(plugin_manager, tmp_path):
    plugin_manager.register(Tiny(), name="tiny-args-models")
    result = CliRunner().invoke(app, ["train", "tiny-args", "--dataset", "synthetic", "--subset", "0",
                                      "--out", str(tmp_path / "r"), "--device", "cpu"])
    _one_error_line(result, "subset size 0 must be between")


@pytest.mark.parametrize("command", ["explain", "report"])
@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--sanity-images", "-3"], "--sanity-images must be >= 0"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--images", "0"], "--images must be at least 1"),
        (["--method", "all", "--method", "gradcam"], "--method all already means every method"),
        (["--method", "gradcam", "--layer", "nope"], "no layer named 'nope'"),
    ],
)
def test_bad_explain_and_report_options(run, command, extra, words):
    result = CliRunner().invoke(app, [command, str(run), "--device", "cpu", *extra])
    _one_error_line(result, words)


def test_out_onto_or_under_a_file(run, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    cases = [
        (["explain", str(run), "--out", str(a_file)], "is a file, not a folder"),
        (["explain", str(run), "--out", str(a_file / "sub")], "which is a file"),
        (["report", str(run), "--out", str(a_file / "r.html")], "which is a file"),
        (["report", str(run), "--out", str(tmp_path)], "is a folder; name the HTML file"),
    ]
    for args, words in cases:
        result = CliRunner().invoke(app, [*args, "--device", "cpu", "--method", "gradcam"])
        _one_error_line(result, words)
    assert a_file.read_text() == "keep me"


def test_a_refused_checkpoint_names_the_blocked_global_not_weights_only(run):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"model": Evil(), "epoch": 1}, run / "checkpoint.pt")
    result = CliRunner().invoke(app, ["evaluate", str(run), "--device", "cpu"])
    _one_error_line(result, "holds code or objects that xaikit will not load (blocked: posix.system)")
    assert "weights_only" not in result.stderr and "pwned" not in result.output


def test_divergence_advice_is_a_command_that_works(plugin_manager, tmp_path):
    plugin_manager.register(Tiny(), name="tiny-args-models")
    result = CliRunner().invoke(app, [*TRAIN, "--out", str(tmp_path / "r"), "--max-lr", "1e30"])
    _one_error_line(result, "training diverged")
    advice = result.stderr.split("retry with: ")[1].strip()
    assert advice.startswith("xaikit train tiny-args --max-lr ") and "--resume" not in advice


def test_ctrl_c_says_how_to_resume(plugin_manager, tmp_path, monkeypatch):
    import xaikit.train.trainer as trainer

    plugin_manager.register(Tiny(), name="tiny-args-models")
    saved = trainer._save_epoch

    def save_then_interrupt(*args, **kwargs):
        saved(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save_epoch", save_then_interrupt)
    out = tmp_path / "r"
    result = CliRunner().invoke(app, [*TRAIN, "--out", str(out), "--epochs", "2"])
    assert result.exit_code == 130
    assert result.stderr.strip().endswith(f"interrupted; continue with: xaikit train --resume {out}")
