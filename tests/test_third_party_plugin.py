"""Third-party authoring: the guide's example and the template work as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import xaikit

ROOT = Path(__file__).resolve().parents[1]


def test_the_guides_complete_example_registers_all_three_kinds(plugin_manager):
    docs = (ROOT / "docs" / "plugins.md").read_text()
    section = docs.split("## A complete plugin in one file", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("xaikit_tiny_plugin")
    exec(compile(code, "docs/plugins.md", "exec"), module.__dict__)
    plugin_manager.register(module, name="tiny")

    assert "tiny-cnn" in xaikit.list_models()
    model = xaikit.create_model("tiny-cnn", num_classes=2)
    bundle = xaikit.get_dataset_spec("tiny-noise").load(None, None)
    method = xaikit.get_attribution("tiny-ixg")(model)
    x = bundle.test_images[:3].float() / 255
    maps = method(x)
    assert maps.shape == (3, 32, 32) and bool((maps >= 0).all())


def test_an_out_of_tree_plugin_distribution_is_discovered_created_and_trained(tmp_path):
    """Build and install the template as a real distribution, then use it from a new process."""
    source = tmp_path / "xaikit-myplugin"
    shutil.copytree(ROOT / "templates" / "xaikit-plugin", source)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(source)],
        check=True,
    )
    assert list(site.glob("xaikit_myplugin-*.dist-info"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("XAIKIT_DISABLE_PLUGIN_AUTOLOAD", None)
    env.pop("XAIKIT_LOAD_PLUGINS", None)

    def xaikit_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "xaikit", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True)

    listed = xaikit_cli("plugins", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    model = next(m for m in data["models"] if m["name"] == "my-cnn")
    assert model["plugin"] == "myplugin" and model["params"] == 28826
    assert model["distribution"].startswith("xaikit-myplugin")
    assert any(a["name"] == "gradient-norm" and a["plugin"] == "myplugin" for a in data["attributions"])
    assert any(d["name"] == "my-stripes" for d in data["datasets"])

    run = tmp_path / "run"
    trained = xaikit_cli("train", "my-cnn", "--dataset", "my-stripes", "--epochs", "2",
                         "--batch-size", "50", "--device", "cpu", "--out", str(run))
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.strip().splitlines()[-1] == str(run)
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_acc"] > 0.4  # 4 classes: chance is 0.25
