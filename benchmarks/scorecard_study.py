"""The scorecard of every method on a trained run, and whether it ranks methods consistently.

    python benchmarks/scorecard_study.py RUN --images 400 [--data PATH] [--out study.json]
        [--method NAME ...] [--method-arg METHOD.KEY=VALUE ...]
    python benchmarks/scorecard_study.py --table study.json     # reprint a saved study

Runs ``xaikit explain RUN --method all`` on ``--images`` test images (round-robin over the
classes) with the full scorecard, then splits the images into two disjoint halves and ranks
the methods by ROAD combined (and by deletion AUC) on each half from the per-image scores;
prints the Spearman correlation of the two rankings, the README table (per method: ROAD
MoRF / LeRF / combined, deletion / insertion with the random reference, infidelity,
max-sensitivity, sparseness, the sanity verdicts with the interval each is read from, and the
verdict against the controls) and the seconds per metric group, and writes all of it to
``--out``. Not a pytest benchmark: one long run whose numbers go in the
README.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from xaikit.explain import explain
from xaikit.metrics import spearman
from xaikit.options import parse_method_args
from xaikit.registry import get_attribution, list_attributions
from xaikit.run import load_run

CONTROLS = ("random", "sobel", "center")


def _mean(values: list[float | None]) -> float:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def half_rankings(cards: dict[str, dict[str, Any]], metric: str, higher_is_better: bool) -> tuple[float, dict]:
    """Spearman correlation between the method rankings of the two halves of the images."""
    names = sorted(cards)
    halves = []
    for part in (0, 1):
        means = []
        for name in names:
            values = cards[name]["per_image"][metric]
            n = len(values) // 2
            chunk = values[:n] if part == 0 else values[n : 2 * n]
            means.append(_mean(chunk))
        halves.append(np.asarray(means))
    sign = 1.0 if higher_is_better else -1.0
    import torch

    rho = float(spearman(torch.tensor(sign * halves[0])[None], torch.tensor(sign * halves[1])[None])[0])
    return rho, {n: (float(a), float(b)) for n, a, b in zip(names, halves[0], halves[1])}


def _cell(metric: dict[str, Any] | None, digits: int = 3) -> str:
    if not metric or metric.get("mean") is None:
        return "-"
    return f"{metric['mean']:.{digits}f} [{metric['low']:.{digits}f}, {metric['high']:.{digits}f}]"


def _verdict(verdict: dict[str, Any] | None, metrics: dict[str, Any]) -> str:
    """``pass 0.19 [0.08, 0.33]``: the verdict and the interval it was read from."""
    if not verdict:
        return "-"
    return f"{verdict['verdict']} {_cell(metrics.get(verdict['metric']), 2)}"


def table(cards: dict[str, dict[str, Any]], controls: tuple[str, ...]) -> str:
    """The README table of the scorecards."""
    head = ["method", "ROAD MoRF ↓", "ROAD LeRF ↑", "ROAD combined ↑", "deletion ↓ (random)",
            "insertion ↑ (random)", "infidelity ↓", "max-sens. ↓", "sparseness",
            "randomisation (abs. rho < 0.5)", "random logit (rho < 0.5)",
            "beats " + "/".join(controls) + " (faithfulness)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = sorted(cards, key=lambda n: -(cards[n]["metrics"]["road_combined"]["mean"] or -9))
    for name in order:
        card = cards[name]
        m, v = card["metrics"], card["verdicts"]
        beats = "/".join(card["headline"].get(c, {}).get("faithfulness", "·") if c != name else "·"
                         for c in controls)
        rows.append("| " + " | ".join([
            name, _cell(m.get("road_morf")), _cell(m.get("road_lerf")), _cell(m.get("road_combined")),
            f"{_cell(m.get('deletion'))} ({m['deletion_random']['mean']:.3f})",
            f"{_cell(m.get('insertion'))} ({m['insertion_random']['mean']:.3f})",
            _cell(m.get("infidelity"), 2), _cell(m.get("sensitivity_max"), 3),
            _cell(m.get("sparseness"), 2),
            _verdict(v.get("randomization"), m), _verdict(v.get("random_logit"), m), beats,
        ]) + " |")
    return "\n".join(rows)


def report(study: dict[str, Any]) -> None:
    """Print a study: the README table, the halves' rank correlation and the cost."""
    print(table(study["cards"], CONTROLS))
    n = study["images"]
    print(f"\n{len(study['cards'])} methods (controls included) on {n} images in {study['seconds']:.0f} s")
    print(f"rank correlation of the two disjoint halves ({n // 2} images each): ROAD combined "
          f"{study['rank_spearman_road_combined']:.3f}, deletion {study['rank_spearman_deletion']:.3f}")
    print("seconds per metric group, all methods: "
          + ", ".join(f"{g} {s:.1f}" for g, s in study["seconds_per_metric_group"].items()))
    if study["skipped"]:
        print("skipped: " + "; ".join(f"{m}: {why}" for m, why in study["skipped"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?")
    parser.add_argument("--table", metavar="STUDY_JSON", default=None,
                        help="print the tables of a study saved by --out, and compute nothing")
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--data", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sanity-images", type=int, default=8)
    parser.add_argument("--out", default="scorecard-study.json")
    parser.add_argument("--method", action="append", default=None,
                        help="method name (repeat; default: every registered one)")
    parser.add_argument("--method-arg", action="append", default=[],
                        help="METHOD.KEY=VALUE, as for `xaikit explain` (repeat)")
    args = parser.parse_args()
    if args.table is not None:
        report(json.loads(Path(args.table).read_text()))
        return
    if args.run is None:
        parser.error("give a RUN folder, or --table STUDY_JSON")
    run = load_run(args.run)
    options = parse_method_args(args.method_arg, {m: get_attribution(m) for m in list_attributions()})
    started = time.perf_counter()
    explanation = explain(run, args.method or ["all"], n_images=args.images, data_path=args.data, device=args.device,
                          sanity_images=args.sanity_images, method_options=options)
    seconds = time.perf_counter() - started
    explanation.save(run.path)  # `xaikit report RUN` then reuses these maps and scores
    cards = {**explanation.scores, **explanation.controls}
    rho_road, halves = half_rankings(cards, "road_combined", True)
    rho_del, _ = half_rankings(cards, "deletion", False)
    groups = sorted({g for c in cards.values() for g in c["seconds"]})
    study = {
        "images": args.images, "seconds": seconds, "rank_spearman_road_combined": rho_road,
        "rank_spearman_deletion": rho_del, "halves_road_combined": halves,
        "seconds_per_metric_group": {g: sum(c["seconds"].get(g, 0.0) for c in cards.values()) for g in groups},
        "skipped": explanation.skipped,
        "cards": {n: {k: c[k] for k in ("metrics", "verdicts", "headline", "seconds", "seconds_per_image")}
                  for n, c in cards.items()},
    }
    Path(args.out).write_text(json.dumps(study, indent=1))
    report(study)


if __name__ == "__main__":
    main()
