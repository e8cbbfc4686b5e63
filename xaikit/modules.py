"""Small helpers about ``nn.Module`` state shared by training, attribution and reports."""

from __future__ import annotations

import contextlib
import weakref
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

#: Models seen to fail on channels_last input (a ``view`` after a convolution): run on NCHW.
_NCHW_ONLY: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()


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


def forward_nhwc(model: nn.Module, x: Tensor, on_retry: Callable[[], None] | None = None) -> Tensor:
    """``model(x)``, with 4-D images on the CPU given as channels_last (NHWC) tensors.

    oneDNN's CPU convolutions take NHWC input without reordering it at every layer: ULTIMUS's
    forward at batch 64 runs 1.7-1.9x faster on 2 cores, with the same outputs to float
    rounding. Only the input changes format; the model's weights stay as they are (loading
    the whole model channels_last made the perturbation metrics slower, see
    ``xaikit.run.load_model``). A model that cannot take NHWC tensors (``x.view`` after a
    convolution raises a ``RuntimeError``) is run again on contiguous images, after
    ``on_retry()``, and remembered, so later calls go straight to NCHW. Elsewhere (GPUs,
    other shapes) this is ``model(x)``.
    """
    if x.device.type != "cpu" or x.ndim != 4 or model in _NCHW_ONLY:
        return model(x)
    try:
        return model(x.contiguous(memory_format=torch.channels_last))
    except RuntimeError:
        _NCHW_ONLY.add(model)
        if on_retry is not None:
            on_retry()
        return model(x.contiguous())
