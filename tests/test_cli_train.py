"""``xaikit train``, ``lr-find`` and ``evaluate`` through the CLI, and their one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from xaikit.cli import app, main
from xaikit.errors import DataError, RunError, UnknownNameError, XaikitError
from xaikit.hookspecs import hookimpl
from xaikit.specs import ModelSpec, Recipe

RECIPE = Recipe(epochs=1, batch_size=16, max_lr=0.01, augment=("flip",))


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class TinyModels:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("tiny-cli", TinyNet, "conv", recipe=RECIPE))
        register(ModelSpec("tiny-cli-wide", lambda **kw: TinyNet(width=7, **kw), "conv", recipe=RECIPE))


@pytest.fixture
def runner(plugin_manager) -> CliRunner:
    plugin_manager.register(TinyModels(), name="tiny-cli-models")
    return CliRunner()


TRAIN = ["train", "tiny-cli", "--dataset", "synthetic", "--subset", "30", "--device", "cpu"]


def stdout_lines(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]


def test_train_then_evaluate(runner, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, [*TRAIN, "--out", str(out), "--epochs", "2", "--max-lr", "0.02",
                                 "--optimizer", "sgd", "--label-smoothing", "0.1", "--tta"])
    assert result.exit_code == 0, result.output
    assert stdout_lines(result)[-1] == str(out)
    assert "epoch 2/2" in result.stderr  # one summary line per epoch on stderr
    config = json.loads((out / "config.json").read_text())
    recipe = config["recipe"]
    assert (recipe["epochs"], recipe["max_lr"], recipe["optimizer"], recipe["label_smoothing"]) == (2, 0.02, "sgd", 0.1)
    assert recipe["batch_size"] == RECIPE.batch_size  # not overridden: the model's recipe
    assert "test_acc_tta" in json.loads((out / "history.json").read_text())[-1]

    result = runner.invoke(app, ["evaluate", str(out), "--device", "cpu", "--tta"])
    assert result.exit_code == 0, result.output
    assert "precision" in result.stdout and "macro avg" in result.stdout
    assert stdout_lines(result)[-1] == str(out / "metrics.json")
    assert "tta_accuracy" in json.loads((out / "metrics.json").read_text())


def test_resume_through_the_cli(runner, tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, [*TRAIN, "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["train", "--resume", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "already finished" in result.stderr
    assert stdout_lines(result)[-1] == str(out)
    result = runner.invoke(app, ["train", "--resume", str(out), "--epochs", "3"])
    assert result.exit_code == 2 and "drop --epochs" in result.stderr


def test_lr_find_command(runner, tmp_path):
    out = tmp_path / "lr"
    result = runner.invoke(app, ["lr-find", "tiny-cli", "--dataset", "synthetic", "--subset", "30",
                                 "--device", "cpu", "--steps", "30", "--end-lr", "100", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "suggested max LR" in result.stdout and "rule: minimum/10" in result.stdout
    assert stdout_lines(result)[-1] == str(out)
    curve = json.loads((out / "lr_find.json").read_text())
    assert len(curve["lrs"]) == len(curve["losses"]) <= 30
    assert (out / "lr_find.png").stat().st_size > 0


@pytest.mark.parametrize(
    "args, error, words",
    [
        (["train", "no-such-model", "--dataset", "synthetic"], UnknownNameError, "unknown model"),
        (["train", "tiny-cli", "--dataset", "cifar10", "--data", "/no/such/cifar.tar.gz", "--device", "cpu"],
         DataError, ""),
        (["train", "tiny-cli", "--max-lr", "fast"], XaikitError, "--max-lr"),
        (["evaluate", "/no/such/run"], RunError, "not a run folder"),
    ],
)
def test_user_errors_are_xaikit_errors(runner, tmp_path, monkeypatch, args, error, words):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr
    assert error.__name__ and "Traceback" not in result.output


def test_checkpoint_of_another_model_via_main(runner, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert runner.invoke(app, [*TRAIN, "--out", str(out)]).exit_code == 0
    config = json.loads((out / "config.json").read_text())
    config["model"] = "tiny-cli-wide"
    (out / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(sys, "argv", ["xaikit", "evaluate", str(out), "--device", "cpu"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "tiny-cli" in err[0]
    assert "Traceback" not in capsys.readouterr().err


def test_console_script_prints_one_line_and_exits_2(tmp_path):
    script = Path(sys.executable).parent / "xaikit"
    if not script.exists():
        pytest.skip("the xaikit console script is not installed next to this Python")
    proc = subprocess.run([str(script), "evaluate", str(tmp_path / "nothing")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not a run folder" in lines[0]
    assert "Traceback" not in proc.stderr


def test_version(runner):
    import xaikit

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"xaikit {xaikit.__version__}"


@pytest.mark.parametrize(
    "arg, words",
    [
        ("foo=1", "unknown option 'foo' of model 'ultimus'; options: scale: str = 'before'"),
        ("residual=maybe", "option 'residual' of model 'ultimus' takes bool"),
    ],
)
def test_a_bad_model_arg_is_one_line_and_leaves_no_folder(runner, tmp_path, arg, words):
    """Before: --model-arg foo=1 was a 45-line traceback and left an empty run folder;
    residual=maybe trained and stored the string."""
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "ultimus", "--dataset", "synthetic", "--subset", "40",
                                 "--model-arg", arg, "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert words in result.stderr and not out.exists()


def test_a_run_of_an_uninstalled_model_says_which_distribution_to_install(runner, tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, [*TRAIN, "--out", str(out)]).exit_code == 0
    config = json.loads((out / "config.json").read_text())
    config["model"] = "gone-model"
    config["model_origin"] = {"plugin": "gone", "distribution": "xaikit-gone", "version": "1.2"}
    (out / "config.json").write_text(json.dumps(config))
    result = runner.invoke(app, ["evaluate", str(out), "--device", "cpu"])
    assert result.exit_code == 2
    assert "unknown model 'gone-model'" in result.stderr
    assert "pip install xaikit-gone==1.2" in result.stderr
