"""A layer-by-layer model summary, as ``torchsummary`` prints it: output shape and parameters.

One dummy batch goes through the model with a forward hook on every leaf module (a module with
no children) and on every container that holds parameters of its own (``nn.Parameter``
attributes outside its children; the model itself is named by its class then). Each call of a
hooked module is one row, in call order; a module called twice (shared weights) counts its
parameters once. The hooks are removed and the model's train/eval flags restored in
``finally``, also when the forward pass raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from xaikit.errors import XaikitError
from xaikit.modules import count_parameters, model_device, module_mode


@dataclass(frozen=True)
class LayerRow:
    """One call of one module in the summary.

    Attributes:
        name: Module name as in ``model.named_modules()``.
        kind: Class name, e.g. ``"Conv2d"``.
        output_shape: Shape of the output with the batch dimension as ``-1``; a list of shapes
            for a module that returns several tensors.
        params: Parameters of this module itself (0 on repeated calls of the same module).
        trainable: Of ``params``, how many require gradients.
    """

    name: str
    kind: str
    output_shape: Any
    params: int
    trainable: int


@dataclass(frozen=True)
class ModelSummary:
    """The rows and the totals; ``total_params`` counts every parameter of the model once."""

    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    input_shape: tuple[int, ...]


def _shape_of(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return [-1, *output.shape[1:]]
    if isinstance(output, (list, tuple)):
        return [_shape_of(o) for o in output]
    if isinstance(output, dict):
        return {key: _shape_of(value) for key, value in output.items()}
    return type(output).__name__


def format_shape(shape: Any) -> str:
    """``[-1, 16, 32, 32]`` -> ``"[-1, 16, 32, 32]"``; nested lists print each shape."""
    if isinstance(shape, list) and shape and all(isinstance(s, int) for s in shape):
        return "[" + ", ".join(str(s) for s in shape) + "]"
    if isinstance(shape, list):
        return "(" + ", ".join(format_shape(s) for s in shape) + ")"
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {format_shape(v)}" for k, v in shape.items()) + "}"
    return str(shape)


def _hooked_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    chosen = []
    for name, module in model.named_modules():
        is_leaf = next(module.children(), None) is None
        owns_params = next(module.parameters(recurse=False), None) is not None
        if is_leaf or owns_params:  # the model itself: when it is one leaf or holds parameters
            chosen.append((name or type(model).__name__, module))
    return chosen


def layer_summary(
    model: nn.Module,
    input_shape: Sequence[int],
    device: str | torch.device | None = None,
    batch_size: int = 2,
) -> ModelSummary:
    """Run one zero batch ``[batch_size, *input_shape]`` through ``model`` in eval mode and
    record each hooked module's output shape and parameter count.

    Args:
        model: The model (left on its device, with its train/eval flags restored).
        input_shape: ``(C, H, W)`` of one input.
        device: Where the dummy batch goes (default: the model's parameters' device).
        batch_size: Images in the dummy batch (2, so that any batch statistics are defined).

    Raises:
        XaikitError: the model cannot run on an input of that shape (one line).
    """
    if device is None:
        device = model_device(model)
    rows: list[LayerRow] = []
    counted: set[int] = set()
    handles: list[RemovableHandle] = []

    def make_hook(name: str):
        def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
            own = list(module.parameters(recurse=False))
            first = id(module) not in counted
            counted.add(id(module))
            rows.append(
                LayerRow(
                    name=name,
                    kind=type(module).__name__,
                    output_shape=_shape_of(output),
                    params=sum(p.numel() for p in own) if first else 0,
                    trainable=sum(p.numel() for p in own if p.requires_grad) if first else 0,
                )
            )

        return hook

    try:
        for name, module in _hooked_modules(model):
            handles.append(module.register_forward_hook(make_hook(name)))
        with module_mode(model, training=False), torch.no_grad():
            model(torch.zeros(batch_size, *input_shape, device=device))
    except (RuntimeError, ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise XaikitError(
            f"{type(model).__name__} does not run on inputs of shape {list(input_shape)}: {detail}"
        ) from None
    finally:
        for handle in handles:
            handle.remove()
    total, trainable = count_parameters(model)
    return ModelSummary(
        rows=rows,
        total_params=total,
        trainable_params=trainable,
        input_shape=tuple(int(s) for s in input_shape),
    )
