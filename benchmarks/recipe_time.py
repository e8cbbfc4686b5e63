"""Seconds per epoch of each model's own recipe on this machine, and what it buys.

    python benchmarks/recipe_time.py [--model airbench94 --model custom-resnet] [--steps 4]
                                     [--accuracy airbench94=runs/airbench94 ...]

For each model it times ``--steps`` optimizer steps of the recipe exactly as ``xaikit train``
runs them (``train_one_epoch`` on 50,000 synthetic uint8 images: the recipe's batch size,
optimizer, schedule, augmentation, channels_last, the model spec's ``init_from_data`` and
lookahead; data values do not change the arithmetic), after one warm-up step, and projects the
seconds of one epoch (``ceil(50,000 / batch)`` steps) and of the whole recipe. With
``--accuracy MODEL=RUN`` it reads the run's final test accuracy (``history.json``, and
``metrics.json``'s ``tta_accuracy`` where ``xaikit evaluate --tta`` wrote one) beside the
projected time of the whole recipe on this machine (the run may have been trained elsewhere:
the recipe and data, not the device, set its accuracy). Run it on a quiet machine: one model at a time, nothing
beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch


def time_recipe(name: str, steps: int, images: int = 50_000) -> dict[str, float]:
    from xaikit.data import BatchAugment
    from xaikit.registry import get_model_spec
    from xaikit.schedule import build_scheduler, steps_per_epoch
    from xaikit.specs import DataBundle
    from xaikit.train.loop import build_optimizer, recipe_extras, train_one_epoch

    spec = get_model_spec(name)
    recipe = spec.recipe
    torch.manual_seed(0)
    data = DataBundle(
        train_images=torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8),
        train_labels=torch.randint(0, 10, (images,)), test_images=torch.zeros(0, 3, 32, 32, dtype=torch.uint8),
        test_labels=torch.zeros(0, dtype=torch.long), classes=[str(i) for i in range(10)],
        mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26), source="synthetic",
    )
    model = spec.create()
    if spec.init_from_data is not None:
        spec.init_from_data(model, data)
    model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, recipe)
    per_epoch = steps_per_epoch(images, recipe.batch_size)
    scheduler = build_scheduler(optimizer, recipe, per_epoch)
    _lookahead, after_step, altflip = recipe_extras(model, recipe, scheduler, images, 0,
                                                    torch.device("cpu"))
    augment = BatchAugment.from_recipe(recipe) if recipe.augment else None
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    def run(n: int) -> float:
        subset = n * recipe.batch_size
        started = time.perf_counter()
        train_one_epoch(
            model, optimizer, scheduler, criterion, data.train_images[:subset],
            data.train_labels[:subset], data.mean, data.std, augment, recipe.batch_size,
            torch.Generator().manual_seed(0), epoch=1, channels_last=True, altflip=altflip,
            after_step=after_step,
        )
        return time.perf_counter() - started

    run(1)  # warm-up
    seconds_per_step = run(steps) / steps
    return {"batch_size": recipe.batch_size, "epochs": recipe.epochs, "steps_per_epoch": per_epoch,
            "seconds_per_step": seconds_per_step, "seconds_per_epoch": seconds_per_step * per_epoch,
            "seconds_total": seconds_per_step * per_epoch * recipe.epochs}


def final_accuracy(run: Path) -> tuple[float, float | None]:
    history = json.loads((run / "history.json").read_text())
    metrics_path = run / "metrics.json"
    tta = json.loads(metrics_path.read_text()).get("tta_accuracy") if metrics_path.is_file() else None
    return float(history[-1]["test_acc"]), tta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--accuracy", action="append", default=[], metavar="MODEL=RUN")
    args = parser.parse_args()
    runs = dict(item.split("=", 1) for item in args.accuracy)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':<14} {'batch':>5} {'s/step':>7} {'s/epoch':>8} {'epochs':>6} {'total min':>9} "
          f"{'test acc':>8} {'TTA':>7}")
    for name in args.model or ["airbench94", "custom-resnet"]:
        t = time_recipe(name, args.steps)
        acc, tta = final_accuracy(Path(runs[name])) if name in runs else (math.nan, None)
        print(f"{name:<14} {t['batch_size']:>5} {t['seconds_per_step']:>7.2f} {t['seconds_per_epoch']:>8.0f} "
              f"{t['epochs']:>6} {t['seconds_total'] / 60:>9.1f} {acc:>8.2%} "
              f"{'' if tta is None else f'{tta:.2%}':>7}", flush=True)


if __name__ == "__main__":
    main()
