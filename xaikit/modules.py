"""Small helpers about ``nn.Module`` state shared by training, attribution and reports."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def module_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Set ``model.train(training)`` for the block, then restore every submodule's own flag.

    Restoring each submodule (not only the top-level flag) keeps deliberate mixes intact, such
    as a BatchNorm frozen in eval mode inside a model that trains.
    """
    modes = [(m, m.training) for m in model.modules()]
    if all(was == training for _m, was in modes):  # already so: nothing to set or restore
        yield
        return
    model.train(training)
    try:
        yield
    finally:
        for m, was_training in modes:  # each module's own flag (m.train() would recurse: O(n^2))
            m.training = was_training


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts, each shared parameter once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
