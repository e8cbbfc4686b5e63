"""The scorecard (xaikit.metrics.scorecard) for every registered method, and against controls."""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor

import xaikit
from xaikit.attribution.base import Attribution
from xaikit.errors import XaikitError
from xaikit.metrics import CRITERIA, GROUPS, METRICS, ScorecardSettings, random_reference, scorecard
from xaikit.plugins import make_plugin_manager
from xaikit.testing import ContractNet

METHODS = xaikit.list_attributions(make_plugin_manager())
FAST = ScorecardSettings(percentiles=(20, 50, 80), steps=4, infidelity_samples=2,
                         sensitivity_samples=2, robustness_images=2, sanity_images=2, n_boot=50)


class InputMagnitude(Attribution):
    name = "test-input-magnitude"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        return x.abs().sum(dim=1)


def images(n: int = 4) -> Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def check_card(card: dict) -> None:
    json.dumps(card, allow_nan=False)
    for key, m in card["metrics"].items():
        assert key in METRICS
        assert set(m) == {"mean", "low", "high", "n", "higher_is_better", "criterion"}
        if m["mean"] is not None:
            assert m["low"] <= m["mean"] <= m["high"]
    assert set(card["seconds"]) >= {"maps", "total"}
    assert all(v >= 0 for v in card["seconds"].values())


@pytest.mark.parametrize("name", METHODS)
def test_every_registered_method_gets_a_json_ready_scorecard(name, plugin_manager) -> None:
    model = ContractNet()
    try:
        method = xaikit.get_attribution(name, plugin_manager)(model)
    except XaikitError as exc:
        pytest.skip(f"{name} cannot apply: {exc}")
    card = scorecard(model, method, images(), settings=FAST)
    check_card(card)
    assert card["method"] == name and card["n_images"] == 4
    expected = {"road_morf", "road_lerf", "road_combined", "deletion", "insertion",
                "deletion_random", "insertion_random", "infidelity", "sensitivity_max",
                "sparseness", "complexity", "randomization_rho", "randomization_rho_abs",
                "random_logit_rho", "emprt"}
    assert expected <= set(card["metrics"])
    assert len(card["per_image"]["road_morf"]) == 4 and len(card["per_image"]["sensitivity_max"]) == 2
    assert len(card["road"]["morf_curve"]) == 3
    assert set(card["verdicts"]) <= {"road", "randomization", "random_logit", "emprt"}
    assert {v["verdict"] for v in card["verdicts"].values()} <= {"pass", "fail", "uncertain"}
    layers = card["randomization"]["rho_by_layer"]
    assert [entry["layer"] for entry in layers] == card["randomization"]["layers"]
    if method.uses_layer:
        assert card["deletion_insertion"]["reference_resolution"] == [8, 8]


def test_controls_as_maps_and_as_scorecards() -> None:
    model, x = ContractNet(), images(6)
    control_card = scorecard(model, InputMagnitude, x, settings=FAST)
    random_maps = random_reference((6, 16, 16), (4, 4), seed=1)
    card = scorecard(model, InputMagnitude, x, settings=FAST,
                     controls={"self": control_card, "random": random_maps})
    check_card(card)
    # against itself every paired difference is 0: undecided, interval [0, 0]
    for key, entry in card["versus"]["self"].items():
        assert entry["mean"] == entry["low"] == entry["high"] == 0.0, key
        assert entry["answer"] == "undecided"
    assert set(card["headline"]["self"]) == set(CRITERIA) | {"cost_ratio"}
    assert set(card["versus"]["random"]) == {"road_morf", "road_lerf", "road_combined", "deletion",
                                             "insertion", "infidelity", "sparseness", "complexity"}
    assert card["headline"]["random"]["sanity"] is None  # maps alone have no sanity scores
    assert {e["answer"] for e in card["versus"]["random"].values()} <= {"yes", "no", "undecided"}


def test_given_maps_are_not_recomputed_and_groups_select() -> None:
    calls = []

    class Counting(InputMagnitude):
        def attribute(self, x: Tensor, target: Tensor) -> Tensor:
            calls.append(len(x))
            return super().attribute(x, target)

    model, x = ContractNet(), images()
    maps = Counting(model)(x)
    calls.clear()
    settings = ScorecardSettings(groups=("road", "complexity"), percentiles=(50,), n_boot=20)
    card = scorecard(model, Counting, x, maps=maps, seconds=1.5, settings=settings)
    assert calls == []
    assert set(card["metrics"]) == {"road_morf", "road_lerf", "road_combined", "sparseness", "complexity"}
    assert card["seconds"]["maps"] == 1.5 and card["seconds_per_image"] == pytest.approx(1.5 / 4)
    with pytest.raises(XaikitError, match="unknown metric groups"):
        scorecard(model, Counting, x, maps=maps, settings=ScorecardSettings(groups=("speed",)))
    assert set(GROUPS) >= {"road", "emprt"}
    none = ScorecardSettings(groups=("randomization", "sensitivity_max"), sanity_images=0,
                             robustness_images=0)
    assert scorecard(model, Counting, x, maps=maps, settings=none)["metrics"] == {}


def test_image_blocks_cover_the_images_in_nearly_equal_blocks_that_depend_on_n_alone() -> None:
    from xaikit.metrics.scorecard import image_blocks

    assert image_blocks(0) == []
    assert image_blocks(10) == [range(0, 10)]
    for n in (16, 31, 32, 100, 257, 400, 10_000):
        blocks = image_blocks(n)
        assert [i for b in blocks for i in b] == list(range(n))
        sizes = [len(b) for b in blocks]
        assert max(sizes) - min(sizes) <= 1 and len(blocks) == min(16, n // 16)
    assert [len(b) for b in image_blocks(100)] == [16, 17, 17, 16, 17, 17]


def test_blocks_scored_in_any_order_by_anyone_give_the_scorecard() -> None:
    """What explain under torchrun relies on: each block's scores depend on its own images only
    (its own seeded draws), so blocks scored separately, in reverse order, on fresh copies of
    the method, summarise to the one-call scorecard, bit for bit."""
    from xaikit.metrics.scorecard import image_blocks, plan_checks, score_block, summarize

    model, x = ContractNet().eval(), images(40)
    targets = model(x).argmax(1)
    settings = ScorecardSettings(percentiles=(20, 50, 80), steps=4, infidelity_samples=2,
                                 sensitivity_samples=2, robustness_images=30, sanity_images=18,
                                 n_boot=50)
    method = InputMagnitude(model)
    maps = method(x, targets)
    expected = scorecard(model, method, x, targets, maps=maps, seconds=1.0, evaluations=1.0,
                         settings=settings)
    blocks = image_blocks(40)
    assert len(blocks) == 2 and expected["blocks"] == 2
    plan = plan_checks(model, method, x[:1], 40, 1.0, settings)
    scored = [score_block(model, InputMagnitude(model), x[r.start:r.stop], targets[r.start:r.stop],
                          maps[r.start:r.stop], start=r.start, block=i, plan=plan, settings=settings)
              for i, r in reversed(list(enumerate(blocks)))]
    card = summarize(method, scored, plan, settings, 1.0)
    stable = lambda c: {k: v for k, v in c.items() if k != "seconds"}  # noqa: E731
    assert json.dumps(stable(card), sort_keys=True) == json.dumps(stable(expected), sort_keys=True)
    # max-sensitivity on the first 30 images spans both blocks of 20
    assert len(card["per_image"]["sensitivity_max"]) == 30
    assert len(card["per_image"]["randomization_rho"]) == 18
    # a block's draws are its own: the second block's ROAD differs from the first block's seed
    again = score_block(model, method, x[20:], targets[20:], maps[20:], start=20, block=0,
                        plan=plan, settings=settings)
    assert not torch.equal(again["per"]["road_morf"], scored[0]["per"]["road_morf"])
