"""The one-cycle learning-rate schedule: built by the trainer, redrawn by the report."""

from __future__ import annotations

import math

import torch

from xaikit.errors import XaikitError
from xaikit.specs import Recipe


def build_scheduler(
    optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int
) -> torch.optim.lr_scheduler.OneCycleLR:
    """The one-cycle LR schedule (Smith & Topin 2019), stepped once per batch.

    LR rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of all
    steps, then anneals (cosine) to ``max_lr / (div_factor * final_div_factor)``. For SGD the
    momentum cycles inversely between ``min(0.85, momentum)`` and ``momentum``; Adam's betas
    are left alone.

    Very short runs (a handful of steps, e.g. smoke tests) get ``pct_start`` clamped so that
    both phases have a step: ``1 < pct_start * total_steps < total_steps``.

    Raises:
        XaikitError: fewer than 2 steps in all.
    """
    total_steps = recipe.epochs * steps_per_epoch
    if total_steps < 2:
        raise XaikitError("one-cycle training needs at least 2 steps; raise --epochs or lower --batch-size")
    pct_start = min(max(recipe.pct_start, 1.5 / total_steps), (total_steps - 0.5) / total_steps)
    cycle_momentum = recipe.optimizer.lower() == "sgd" and recipe.momentum > 0
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=recipe.max_lr,
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
