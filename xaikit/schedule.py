"""The one-cycle learning-rate schedule: built by the trainer, redrawn by the report."""

from __future__ import annotations

import math

import torch

from xaikit.errors import XaikitError
from xaikit.specs import Recipe


def build_scheduler(
    optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The recipe's LR schedule, stepped once per batch: one-cycle or triangular.

    Each parameter group peaks at its own LR (``max_lr``, or ``max_lr * norm_lr_scale`` for
    the normalisation layers, see :func:`xaikit.train.loop.build_optimizer`).

    ``"one-cycle"`` (Smith & Topin 2019, PyTorch's ``OneCycleLR``): LR rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of all
    steps, then anneals (cosine) to ``max_lr / (div_factor * final_div_factor)``. For SGD the
    momentum cycles inversely between ``min(0.85, momentum)`` and ``momentum``; Adam's betas
    are left alone.

    ``"triangular"`` (airbench, Jordan 2024; :func:`triangular`): linear from ``max_lr /
    div_factor`` to ``max_lr`` over the first ``pct_start`` of the steps, then linear to
    ``max_lr / (div_factor * final_div_factor)``; momentum stays at ``momentum``.

    Very short runs (a handful of steps, e.g. smoke tests) get ``pct_start`` clamped so that
    both phases have a step: ``1 < pct_start * total_steps < total_steps``.

    Raises:
        XaikitError: fewer than 2 steps in all.
    """
    total_steps = recipe.epochs * steps_per_epoch
    if total_steps < 2:
        raise XaikitError("one-cycle training needs at least 2 steps; raise --epochs or lower --batch-size")
    pct_start = min(max(recipe.pct_start, 1.5 / total_steps), (total_steps - 0.5) / total_steps)
    peaks = [group.get("peak_lr", recipe.max_lr) for group in optimizer.param_groups]
    if recipe.schedule == "triangular":
        for group, peak in zip(optimizer.param_groups, peaks):
            group["lr"] = group["initial_lr"] = peak
        factor = triangular(total_steps, pct_start, recipe.div_factor, recipe.final_div_factor)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    cycle_momentum = recipe.optimizer.lower() == "sgd" and recipe.momentum > 0
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=peaks,
        total_steps=total_steps,
        pct_start=pct_start,
        div_factor=recipe.div_factor,
        final_div_factor=recipe.final_div_factor,
        cycle_momentum=cycle_momentum,
        base_momentum=min(0.85, recipe.momentum),
        max_momentum=recipe.momentum if cycle_momentum else 0.95,
    )


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Batches per epoch: ``ceil(N / batch_size)``, at least 1."""
    return max(1, math.ceil(num_images / batch_size))


def triangular(total_steps: int, pct_start: float, div_factor: float, final_div_factor: float):  # noqa: ANN201
    """The triangular schedule's LR factor after ``step`` steps (airbench, Jordan 2024): linear
    from ``1 / div_factor`` to 1 over the first ``int(pct_start * total_steps)`` steps, then
    linear to ``1 / (div_factor * final_div_factor)`` at ``total_steps``."""
    warmup = max(1, int(total_steps * pct_start))
    start, end = 1.0 / div_factor, 1.0 / (div_factor * final_div_factor)

    def factor(step: int) -> float:
        if step < warmup:
            frac = step / warmup
            return start * (1 - frac) + frac
        frac = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return (1 - frac) + end * frac

    return factor
