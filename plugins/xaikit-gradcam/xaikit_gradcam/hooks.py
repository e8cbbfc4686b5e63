"""Forward hooks on modules other than the method's one layer, removed when the block ends.

:meth:`xaikit.Attribution.capture` records one layer's output. Two methods need more: Ablation-CAM
replaces the layer's output (a channel set to zero), FullGrad records the output of every layer
with a bias. :func:`forward_hooks` gives them the same guarantees as ``capture``: the hooks are
registered inside a ``with`` block and removed in ``finally``, also when the forward raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from torch import nn

Hook = Callable[[nn.Module, Any, Any], Any]


@contextlib.contextmanager
def forward_hooks(modules: Iterable[nn.Module], hook: Hook) -> Iterator[None]:
    """Register ``hook`` as a forward hook of every module in ``modules`` for the block.

    A hook that returns a value replaces the module's output, as with
    ``nn.Module.register_forward_hook``. Every hook is removed on exit, also on an exception.
    """
    handles = []
    try:
        for module in modules:
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
