"""Names from a data set or a plugin are data, never markup or terminal control.

Before: ANSI/OSC escape sequences in class names reached the terminal, rich markup in a name
became a clickable hyperlink, a class named ``[/oops]`` crashed ``evaluate``, and a class named
``$\\frac{$`` crashed explain and report in matplotlib's math parser.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xaikit.cli import app
from xaikit.hookspecs import hookimpl
from xaikit.run import RunConfig
from xaikit.specs import DatasetSpec, ModelSpec, Recipe
from xaikit.testing import TinyConvNet
from xaikit.train import train

HOSTILE = [
    "\x1b[31mred\x1b[0m",
    "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "[link=http://evil.example]click[/link]",
    "[/oops]",
    "$\\frac{$",
    "a_b^c",
    "line\nerror: forged",
    "<script>x</script>",
    "ok-8",
    "ok-9",
]


def _hostile(path, cache_dir):
    from xaikit.data.synthetic import load_synthetic

    return dataclasses.replace(load_synthetic(path, cache_dir), classes=list(HOSTILE))


class Plugin:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("tiny-hostile", TinyConvNet, "conv", recipe=Recipe(epochs=1, batch_size=16)))

    @hookimpl
    def register_datasets(self, register):
        register(DatasetSpec("hostile", _hostile, "synthetic with hostile class names"))


@pytest.fixture
def run(plugin_manager, tmp_path) -> Path:
    plugin_manager.register(Plugin(), name="hostile-plugin")
    return train(RunConfig("tiny-hostile", dataset="hostile", subset=40, device="cpu"),
                 tmp_path / "run", show_progress=False)


def _clean(text: str) -> None:
    assert "\x1b" not in text
    assert "http://evil.example" not in text or "[link=" in text  # shown literally, never a link
    assert not [line for line in text.splitlines() if line.startswith("error: forged")]


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "{run}", "--device", "cpu"],
        ["explain", "{run}", "--method", "gradcam", "--images", "10", "--sanity-images", "0",
         "--device", "cpu"],
        ["report", "{run}", "--method", "gradcam", "--images", "4", "--sanity-images", "0",
         "--device", "cpu"],
    ],
)
def test_every_command_prints_hostile_class_names_as_plain_text(run, args):
    result = CliRunner().invoke(app, [a.replace("{run}", str(run)) for a in args])
    assert result.exit_code == 0, result.output
    _clean(result.stdout)
    _clean(result.stderr)
    if args[0] == "evaluate":
        assert "[/oops]" in result.stdout and "\\x1b[31mred" in result.stdout
