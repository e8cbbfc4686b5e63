"""What every Captum call shares: hook hygiene, in-place ReLUs, and Captum's chatty warnings.

Captum removes its own hooks in ``finally`` blocks; :func:`captum_call` additionally removes
any module hook that appeared during the call (a safety net against a Captum version that
leaks one), so after a call, also a failed one, the model carries exactly the hooks it had
before.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from torch import nn

from xaikit import NotApplicableError

# Per-module hook dictionaries of torch.nn.Module (the names exist on torch >= 2.0).
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_HOOK_SIDE_DICTS = (
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)

# Warnings Captum emits on every normal call; they say nothing to an xaikit user.
_QUIET = (
    r"Input Tensor \d+ did not already require gradients",
    r"Setting forward, backward hooks and attributes on non-linear",
    r"Setting backward hooks on ReLU activations",
)


def hook_counts(model: nn.Module) -> int:
    """Number of forward/backward (pre-)hooks on ``model`` and all its submodules."""
    return sum(len(getattr(m, d, {})) for m in model.modules() for d in _HOOK_DICTS)


@contextlib.contextmanager
def captum_call(model: nn.Module) -> Iterator[None]:
    """Run a Captum attribution: quiet known warnings; leave no new hook behind, also on errors."""
    before = {id(m): {d: set(getattr(m, d, {})) for d in _HOOK_DICTS} for m in model.modules()}
    try:
        with warnings.catch_warnings():
            for pattern in _QUIET:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for module in model.modules():
            known = before.get(id(module), {})
            for dict_name in _HOOK_DICTS:
                hooks = getattr(module, dict_name, None)
                if not hooks:
                    continue
                for key in set(hooks) - known.get(dict_name, set()):
                    del hooks[key]
                    for side in _HOOK_SIDE_DICTS:
                        getattr(module, side, {}).pop(key, None)


@contextlib.contextmanager
def relus_not_inplace(model: nn.Module) -> Iterator[None]:
    """Temporarily set ``inplace=False`` on every activation module that has the flag.

    Captum's DeepLift and GuidedBackprop hook ``nn.ReLU`` modules; an in-place ReLU overwrites
    the tensor those hooks saved (DeepLift) or breaks full backward hooks. The flags are
    restored on exit.
    """
    flipped = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for module in flipped:
        module.inplace = False
    try:
        yield
    finally:
        for module in flipped:
            module.inplace = True


def require_relu_modules(model: nn.Module, method: str) -> None:
    """Raise :class:`xaikit.NotApplicableError` unless ``model`` has an ``nn.ReLU`` module.

    Guided backprop, deconvolution and guided Grad-CAM change the backward pass of ``nn.ReLU``
    modules only (Captum hooks them). On a model without one (GELU activations, ``F.relu``
    calls) nothing would change and the "map" would silently be the plain gradient.
    """
    if any(isinstance(m, nn.ReLU) for m in model.modules()):
        return
    kinds = sorted({type(m).__name__ for m in model.modules()
                    if type(m).__module__ == "torch.nn.modules.activation"})
    found = f"its activation modules: {', '.join(kinds)}" if kinds else "it has no activation modules"
    raise NotApplicableError(
        f"{method} changes the backward pass of nn.ReLU modules, and {type(model).__name__} has "
        f"none ({found}): its map would be the plain gradient"
    )
