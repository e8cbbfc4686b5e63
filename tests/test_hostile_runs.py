"""Every file of a run folder, fuzzed from its valid form: one `error:` line or success, always.

For each file a run holds (``config.json``, ``history.json``, ``env.json``, ``metrics.json``,
``explanations.json``, ``checkpoint.pt``), hypothesis replaces one value somewhere inside it (at
any depth) with an arbitrary JSON value (NaN and infinities included), deletes a key, adds an
unknown one, or replaces the whole file with junk; then a command that reads that file runs.
Each case must end with exit code 0, or with exit code 2 and exactly one ``error:`` line; never
a traceback, and nothing outside the run folder (and the data cache) changes.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from xaikit.cli import app
from xaikit.explain import explain_run
from xaikit.evaluate import evaluate_run
from xaikit.hookspecs import hookimpl
from xaikit.plugins import make_plugin_manager, set_plugin_manager
from xaikit.run import RunConfig, load_run
from xaikit.specs import DatasetSpec, ModelSpec, Recipe
from xaikit.testing import TinyConvNet
from xaikit.train import train

SETTINGS = settings(
    max_examples=12, deadline=None, derandomize=True, database=None,
    phases=[Phase.explicit, Phase.generate],  # report the failing case as drawn: no slow shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


FIRST_CLASS = ["red square"]  # the first class name of the `fuzz-names` data set


def _named_synthetic(path, cache_dir):
    import dataclasses

    from xaikit.data.synthetic import load_synthetic

    bundle = load_synthetic(path, cache_dir)
    return dataclasses.replace(bundle, classes=[FIRST_CLASS[0], *bundle.classes[1:]])


class Tiny:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("tiny-fuzz", TinyConvNet, "conv", recipe=Recipe(epochs=1, batch_size=16)))

    @hookimpl
    def register_datasets(self, register):
        register(DatasetSpec("fuzz-names", _named_synthetic, "synthetic, first class name fuzzed"))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained run with metrics.json and a saved explanation: the valid form of every file."""
    pm = make_plugin_manager()
    pm.register(Tiny(), name="tiny-fuzz-models")
    set_plugin_manager(pm)
    try:
        folder = train(RunConfig("tiny-fuzz", dataset="fuzz-names", subset=40, device="cpu"),
                       tmp_path_factory.mktemp("fuzz") / "run", show_progress=False)
        evaluate_run(load_run(folder), device="cpu")
        explain_run(folder, ["gradcam"], n_images=2, device="cpu", sanity_images=0)
    finally:
        set_plugin_manager(None)
    return folder


@pytest.fixture
def fuzz_pm(plugin_manager):
    plugin_manager.register(Tiny(), name="tiny-fuzz-models")
    return plugin_manager


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (the root included)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*prefix, i))
    return found


def _mutate(document: Any, data: st.DataObject) -> Any:
    """One drawn change somewhere in ``document``: replace a value, delete a key, add a key."""
    paths = _paths(document)
    path = data.draw(st.sampled_from(paths), label="path")
    action = data.draw(st.sampled_from(["replace", "delete", "add"]), label="action")
    if not path:
        return data.draw(JSON_VALUES, label="whole file")
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "delete" and isinstance(parent, dict):
        del parent[last]
    elif action == "add" and isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=8), label="new key")] = data.draw(JSON_VALUES)
    else:
        parent[last] = data.draw(JSON_VALUES, label="value")
    return document


def _snapshot(root: Path, skip: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and skip not in p.parents
    }


def _check(result, root: Path, before: dict[str, bytes], run: Path) -> None:
    assert result.exit_code in (0, 2), f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, result.stderr
    assert _snapshot(root, run) == before, "a file outside the run folder changed"


COMMANDS = {
    "evaluate": ["evaluate", "{run}", "--device", "cpu"],
    "explain": ["explain", "{run}", "--method", "gradcam", "--images", "2", "--sanity-images", "0",
                "--device", "cpu", "--out", "{run}/again"],
    "report": ["report", "{run}", "--method", "gradcam", "--images", "2", "--sanity-images", "0",
               "--device", "cpu"],
}

# which command reads which file (report reads them all)
CASES = [
    ("config.json", "evaluate"),
    ("config.json", "report"),
    ("history.json", "report"),
    ("env.json", "report"),
    ("metrics.json", "report"),
    ("explanations.json", "report"),
]


def _run_case(template: Path, tmp_path: Path, name: str, command: str, write) -> None:
    root = tmp_path / "case"
    if root.exists():
        shutil.rmtree(root)
    run = root / "run"
    shutil.copytree(template, run)
    write(run / name)
    before = _snapshot(root, run)
    args = [a.replace("{run}", str(run)) for a in COMMANDS[command]]
    result = CliRunner().invoke(app, args)
    _check(result, root, before, run)


@pytest.mark.parametrize(("name", "command"), CASES)
@SETTINGS
@given(data=st.data())
def test_a_fuzzed_json_file_is_one_error_line_or_fine(fuzz_pm, template, tmp_path, name, command, data):
    document = json.loads((template / name).read_text())

    def write(path: Path) -> None:
        path.write_text(json.dumps(_mutate(document, data), allow_nan=True))

    _run_case(template, tmp_path, name, command, write)


JUNK = [b"", b"\x00\xff" * 8, b"{", b"[]", b"null", b'"text"', b"NaN", "\u00e9\x1b[31m".encode()]


@pytest.mark.parametrize("junk", JUNK)
@pytest.mark.parametrize("name", ["config.json", "history.json", "env.json", "metrics.json",
                                  "explanations.json", "checkpoint.pt", "explanations.pt"])
def test_junk_in_any_run_file(fuzz_pm, template, tmp_path, name, junk):
    _run_case(template, tmp_path, name, "report", lambda path: path.write_bytes(junk))


CHECKPOINTS = [
    {"model": "hello"},
    {"model": {}, "epoch": "7"},
    {"model": {"conv.weight": "x"}, "epoch": 1},
    {"epoch": 1},
    [1, 2, 3],
    {"model": {"conv.weight": torch.zeros(3)}, "epoch": 1},
    {"model": {"conv.weight": torch.full((4, 3, 3, 3), math.nan)}, "epoch": 1},
    {"model": {"conv.weight": torch.zeros(4, 3, 3, 3)}, "epoch": -1},
]


@pytest.mark.parametrize("command", ["evaluate", "report"])
@pytest.mark.parametrize("content", CHECKPOINTS, ids=range(len(CHECKPOINTS)))
def test_a_malformed_checkpoint(fuzz_pm, template, tmp_path, command, content):
    _run_case(template, tmp_path, "checkpoint.pt", command, lambda path: torch.save(content, path))


@pytest.mark.parametrize("content", CHECKPOINTS[:5], ids=range(5))
def test_resume_with_a_malformed_checkpoint(fuzz_pm, template, tmp_path, content):
    root = tmp_path / "case"
    run = root / "run"
    shutil.copytree(template, run)
    torch.save(content, run / "checkpoint.pt")
    before = _snapshot(root, run)
    history = (run / "history.json").read_bytes()
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--device", "cpu"])
    _check(result, root, before, run)
    assert result.exit_code == 2 and (run / "history.json").read_bytes() == history


@SETTINGS
@given(name=st.text(min_size=1, max_size=20))
def test_any_class_name_is_shown_as_plain_text(fuzz_pm, template, tmp_path, name):
    """Fuzzed class names (control characters, markup, mathtext) through evaluate and report."""
    root = tmp_path / "names"
    if root.exists():
        shutil.rmtree(root)
    run = root / "run"
    shutil.copytree(template, run)
    config = json.loads((run / "config.json").read_text())
    classes = config["data"]["classes"]
    if name in classes[1:]:
        return
    classes[0] = FIRST_CLASS[0] = name
    (run / "config.json").write_text(json.dumps(config))
    for explanation in ("explanations.json", "explanations.pt", "metrics.json"):
        (run / explanation).unlink()
    for command in ("evaluate", "report"):
        before = _snapshot(root, run)
        args = [a.replace("{run}", str(run)) for a in COMMANDS[command]]
        result = CliRunner().invoke(app, args)
        _check(result, root, before, run)
        assert "\x1b" not in result.output
    FIRST_CLASS[0] = "red square"
