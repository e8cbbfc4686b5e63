"""``xaikit report``: the page's sections and escaping, reuse of metrics and explanations, the
layer summary and its hooks, the CLI, and the page rendered in headless Chromium."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from serve_support import chromium
from torch import nn
from typer.testing import CliRunner

from xaikit.errors import UnknownNameError, XaikitError
from xaikit.explain import spread_over_classes
from xaikit.hookspecs import hookimpl
from xaikit.plugins import make_plugin_manager, set_plugin_manager
from xaikit.registry import list_attributions, resolve_methods
from xaikit.report.build import REPORT_DEFAULT_METHODS, build_report
from xaikit.report.charts import one_cycle_lrs
from xaikit.report.summary import format_shape, layer_summary
from xaikit.run import RunConfig, load_data, load_run
from xaikit.specs import DatasetSpec, ModelSpec, Recipe
from xaikit.testing import TinyConvNet
from xaikit.train import train

EVIL_CLASS = "<script>alert(1)</script>"
RUN_NAME = "run&<b>x</b>"
METHODS = ["gradcam", "saliency"]
SECTION_IDS = ("run", "training", "evaluation", "trust", "misclassified", "explanations", "scores")


class TinyModels:
    @hookimpl
    def register_models(self, register):
        register(
            ModelSpec(
                "tiny-report",
                TinyConvNet,
                "conv",
                recipe=Recipe(epochs=1, batch_size=16, max_lr=0.01),
                description="a conv, a ReLU & a linear layer",
            )
        )

    @hookimpl
    def register_datasets(self, register):
        register(DatasetSpec("evil-synthetic", _evil_synthetic, "synthetic, one class named <script>"))


def _evil_synthetic(path, cache_dir):
    """The synthetic set with a hostile first class name (it must be escaped everywhere)."""
    from xaikit.data.synthetic import load_synthetic

    bundle = load_synthetic(path, cache_dir)
    return dataclasses.replace(bundle, classes=[EVIL_CLASS, *bundle.classes[1:]])


def _missing_methods() -> list[str]:
    return [m for m in METHODS if m not in list_attributions()]


@pytest.fixture(scope="module")
def report_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch tiny run on 40 synthetic images, one class renamed to a script tag, reported."""
    pm = make_plugin_manager()
    set_plugin_manager(pm)
    try:
        pm.register(TinyModels(), name="tiny-report-models")
        missing = _missing_methods()
        if missing:
            pytest.skip(f"attribution plugins not installed: {missing}")
        torch.manual_seed(0)
        folder = train(
            RunConfig("tiny-report", dataset="evil-synthetic", subset=40, device="cpu"),
            tmp_path_factory.mktemp("report") / RUN_NAME,
            show_progress=False,
        )
        build_report(folder, METHODS, n_images=4, device="cpu")
    finally:
        set_plugin_manager(None)
    return folder


@pytest.fixture(scope="module")
def page(report_run: Path) -> str:
    return (report_run / "report.html").read_text()


def test_page_has_every_section_and_the_run_facts(page, report_run):
    for anchor in SECTION_IDS:
        assert f'<section class="card" id="{anchor}">' in page
        assert f'<a href="#{anchor}">' in page  # table of contents
    assert "tiny-report" in page
    params = sum(p.numel() for p in TinyConvNet().parameters())
    assert f"{params:,}" in page
    for layer in ("conv", "act", "fc"):
        assert f"<code>{layer}</code>" in page
    assert "[-1, 4, 32, 32]" in page and "[-1, 10]" in page
    assert "batch_size" in page and "max_lr" in page  # recipe
    assert "synthetic" in page and "torch" in page and "python" in page  # data and versions
    history = json.loads((report_run / "history.json").read_text())
    assert f"{history[-1]['test_acc']:.2%}" in page
    metrics = json.loads((report_run / "metrics.json").read_text())
    assert f"{metrics['accuracy']:.2%}" in page
    for method in METHODS:
        assert f"<strong>{method}</strong>" in page
    assert page.count("badge pass") + page.count("badge fail") >= len(METHODS)


def test_data_text_is_escaped(page):
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()  # the page has no script of its own either
    assert "run&amp;&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>x</b>" not in page
    assert "a conv, a ReLU &amp; a linear layer" in page


def test_page_is_self_contained(page):
    sources = re.findall(r'\ssrc="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"(href|src)=\"(https?:)?//", page)
    assert "@import" not in page and "url(" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_figures_and_computed_files_are_written(report_run):
    figures = report_run / "figures"
    for name in (
        "training.png",
        "lr_schedule.png",
        "confusion_matrix.png",
        "explanations.png",
        "faithfulness.png",
        "road.png",
        "randomisation.png",
    ):
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    metrics = json.loads((report_run / "metrics.json").read_text())
    if metrics["misclassified"]:
        assert (figures / "misclassified.png").is_file()
    record = json.loads((figures / "explanations.json").read_text())
    assert list(record["methods"]) == METHODS and len(record["ids"]) == 4
    assert not (report_run / "explanations.json").exists()  # `xaikit explain`'s file is left alone


def test_headline_reads_the_saved_scorecards(page, report_run):
    """The headline table shows each method's and each control's answers and verdicts, from the
    scorecards that the page saved, ranked by faithfulness, before the maps."""
    from xaikit.report.verdicts import SANITY_CHECKS, faithfulness_ranks, headline_order

    record = json.loads((report_run / "figures" / "explanations.json").read_text())
    cards = {**record["methods"], **record["controls"]}
    assert set(record["controls"]) == {"random", "sobel", "center"}
    assert page.index('id="trust"') < page.index('id="misclassified"') < page.index('id="scores"')
    trust = page[page.index('<table class="headline">'):page.index('id="misclassified"')]
    order = headline_order(cards, faithfulness_ranks(cards))
    shown = re.findall(r'<tbody[^>]*><tr><td class="num">.*?<strong>([^<]+)</strong>', trust)
    assert shown == order
    for name, card in cards.items():
        row = re.search(rf"<strong>{re.escape(name)}</strong>.*?</tbody>", trust, re.DOTALL)[0]
        for control, line in card["headline"].items():
            assert f">{line['faithfulness']}</span> {control}</div>" in row, (name, control)
        for check, label in SANITY_CHECKS.items():
            shown = card["verdicts"].get(check, {}).get("verdict", "not run")
            assert f">{shown}</span> {label}</div>" in row, (name, check)
    assert "beat all controls, pass sanity" in page


def test_gallery_shows_misclassified_images_with_overlays(plugin_manager, page, report_run):
    plugin_manager.register(TinyModels(), name="tiny-report-models")
    metrics = json.loads((report_run / "metrics.json").read_text())
    wrong = metrics["misclassified"]
    if not wrong:
        assert "classifies every test image correctly" in page
        return
    shown = min(4, len(wrong))
    assert page.count('<div class="tile">') == shown
    assert f"{shown} of {len(wrong):,} misclassified" in page
    assert page.count('alt="gradcam map of misclassified test image') == shown
    labels = load_data(load_run(report_run)).test_labels
    wrong_ids = torch.as_tensor(wrong)
    expected = wrong_ids[spread_over_classes(labels[wrong_ids], shown)].tolist()
    for test_id in expected:  # round-robin over the true classes of the wrong ones
        assert f'alt="misclassified test image {test_id}"' in page


def test_second_report_reuses_metrics_and_explanations(plugin_manager, report_run, tmp_path):
    plugin_manager.register(TinyModels(), name="tiny-report-models")
    stamps = {
        p: p.stat().st_mtime_ns
        for p in (report_run / "metrics.json", report_run / "figures" / "explanations.json")
    }
    out = build_report(
        report_run, ["saliency"], n_images=2, device="cpu", out=tmp_path / "again.html"
    )
    assert out == tmp_path / "again.html"
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    text = out.read_text()
    assert "From figures/explanations.json" in text and "From metrics.json" in text
    assert "<td><strong>saliency</strong></td>" in text
    assert "<td><strong>gradcam</strong></td>" not in text  # scored, but not asked for this time


def test_cli_report_prints_the_html_path_last(plugin_manager, report_run, tmp_path):
    from xaikit.cli import app

    plugin_manager.register(TinyModels(), name="tiny-report-models")
    out = tmp_path / "cli.html"
    result = CliRunner().invoke(
        app,
        [
            "report",
            str(report_run),
            "--methods",
            "gradcam",
            "--images",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out)
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_method_choice(plugin_manager):
    registered = list_attributions()
    def report_methods(methods):
        return resolve_methods(methods, REPORT_DEFAULT_METHODS)

    assert report_methods(None) == [m for m in REPORT_DEFAULT_METHODS if m in registered]
    assert report_methods(["all"]) == registered
    if registered:
        assert report_methods([registered[0], registered[0]]) == [registered[0]]
    with pytest.raises(UnknownNameError, match="no-such-method"):
        report_methods(["no-such-method"])


class SharedAndOwn(nn.Module):
    """A module called twice and a parameter held by a container."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.block = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3))
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.block(x)) * self.scale
        return self.head(x.mean(dim=(2, 3)))


def test_layer_summary_rows_totals_and_hook_cleanup():
    model = SharedAndOwn().train()
    summary = layer_summary(model, (3, 8, 8))
    names = [r.name for r in summary.rows]
    assert names == ["block.0", "block.1", "block.0", "block.1", "head", "SharedAndOwn"]
    assert [r.params for r in summary.rows] == [84, 6, 0, 0, 8, 1]
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    assert sum(r.params for r in summary.rows) == summary.total_params  # shared module counted once
    assert next(r for r in summary.rows if r.name == "head").output_shape == [-1, 2]
    assert (
        format_shape([-1, 3, 8, 8]) == "[-1, 3, 8, 8]"
        and format_shape([[-1, 2], [-1, 3]]) == "([-1, 2], [-1, 3])"
    )
    assert all(m.training for m in model.modules())
    assert all(not m._forward_hooks for m in model.modules())


def test_layer_summary_bad_shape_is_one_line_error_and_leaves_no_hook():
    model = SharedAndOwn().eval()
    with pytest.raises(XaikitError, match=r"does not run on inputs of shape \[5, 8, 8\]"):
        layer_summary(model, (5, 8, 8))
    assert all(not m._forward_hooks for m in model.modules())
    assert not any(m.training for m in model.modules())


def test_one_cycle_schedule_is_rebuilt_from_the_recipe():
    recipe = Recipe(epochs=4, batch_size=10, max_lr=0.2, div_factor=20.0, pct_start=0.25).to_dict()
    positions, lrs = one_cycle_lrs(recipe, num_train=95)  # 10 steps per epoch, peak at step 9
    assert len(lrs) == 40 and positions[-1] == pytest.approx(4.0)
    assert int(lrs.argmax()) == 9
    assert lrs[0] == pytest.approx(0.01) and lrs.max() == pytest.approx(0.2)
    assert lrs[-1] < lrs[0] / 100


# -- the page in a real browser -----------------------------------------------------------------

CHECK_SCRIPT = """<script>
window.__problems = [];
window.addEventListener("error", function (e) {
  var t = e.target || {};
  window.__problems.push(e.message || ("failed to load " + (t.src || t.href || t.tagName)));
}, true);
document.addEventListener("securitypolicyviolation", function (e) {
  window.__problems.push("blocked " + e.blockedURI + " by " + e.violatedDirective);
});
var __consoleError = console.error;
console.error = function () {
  window.__problems.push("console.error: " + Array.prototype.join.call(arguments, " "));
  __consoleError.apply(console, arguments);
};
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                     .map(function (i) { return i.alt; });
  var out = document.createElement("pre");
  out.id = "result";
  out.textContent = JSON.stringify(
    {images: images.length, broken: broken, problems: window.__problems});
  document.body.appendChild(out);
});
</script>"""

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--disable-dev-shm-usage",
]


def test_page_renders_in_headless_chromium(page, tmp_path):
    browser = chromium("render the report")
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert policy, "the page declares its content security policy"
    checked = page.replace(policy.group(1), policy.group(1) + "; script-src 'unsafe-inline'")
    checked = checked.replace("<head>", "<head>\n" + CHECK_SCRIPT, 1)
    html_file = tmp_path / "checked.html"
    html_file.write_text(checked)
    base = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*base, "--virtual-time-budget=10000", "--dump-dom", html_file.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    found = re.search(r'<pre id="result">(.*?)</pre>', dom.stdout, re.DOTALL)
    assert found, f"no result in the DOM; chromium said: {dom.stderr[-2000:]}"
    result = json.loads(
        found.group(1)
        .replace("&quot;", '"')
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
    )
    assert result["images"] == page.count("<img ") > 0
    assert result["broken"] == []
    assert result["problems"] == []

    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1280,4000", html_file.as_uri()],
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("XAIKIT_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


def test_out_elsewhere_puts_figures_beside_it_and_leaves_run_figures_alone(
    plugin_manager, report_run, tmp_path
):
    """Before: `report RUN --out other.html` overwrote RUN/figures/ of the default report."""
    plugin_manager.register(TinyModels(), name="tiny-report-models")
    run_figures = {p.name: p.stat().st_mtime_ns for p in (report_run / "figures").iterdir()}
    out = build_report(report_run, ["gradcam"], n_images=2, device="cpu", out=tmp_path / "other.html")
    assert (tmp_path / "other-figures" / "confusion_matrix.png").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in (report_run / "figures").iterdir()} == run_figures
    assert str(tmp_path / "other-figures") in out.read_text()


class FlatNet(torch.nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3 * 32 * 32, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


class FlatModels:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("flat-report", FlatNet, None, recipe=Recipe(epochs=1, batch_size=16)))


def test_report_of_a_model_without_spatial_layer_skips_cam_methods(plugin_manager, tmp_path):
    """Before: `xaikit report` failed outright on the CAM methods of such a model."""
    plugin_manager.register(FlatModels(), name="flat-report-models")
    folder = train(RunConfig("flat-report", dataset="synthetic", subset=40, device="cpu"),
                   tmp_path / "run", show_progress=False)
    result = CliRunner().invoke(
        __import__("xaikit.cli", fromlist=["app"]).app,
        ["report", str(folder), "--images", "2", "--sanity-images", "0", "--batch-size", "8",
         "--device", "cpu", "-m", "gradcam", "-m", "saliency"],
    )
    assert result.exit_code == 0, result.output
    page = (folder / "report.html").read_text()
    assert "Skipped" in page and "no spatial layer" in page
    assert "<td><strong>saliency</strong></td>" in page
    assert "<td><strong>gradcam</strong></td>" not in page


def test_recipe_table_shows_only_settings_that_applied():
    """Before: momentum/nesterov were shown for Adam, and a cutout size without cutout."""
    from xaikit.report.sections import applicable_recipe

    adam = applicable_recipe(Recipe(optimizer="adam", augment=("crop", "flip")))
    assert "momentum" not in adam and "nesterov" not in adam and "cutout" not in adam
    assert adam["crop_padding"] == 4
    sgd = applicable_recipe(Recipe(optimizer="sgd", augment=("cutout",)))
    assert sgd["momentum"] == 0.9 and sgd["cutout"] == 8 and "crop_padding" not in sgd
