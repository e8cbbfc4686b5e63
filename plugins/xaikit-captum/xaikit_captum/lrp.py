"""Layer-wise relevance propagation (Bach et al., "On Pixel-Wise Explanations for Non-Linear
Classifier Decisions by Layer-Wise Relevance Propagation", PLOS ONE 2015; Montavon et al.,
"Methods for interpreting and understanding deep neural networks", Digital Signal Processing
2018), through Captum's ``LRP``."""

from __future__ import annotations

import copy

import torch.fx
from captum.attr import LRP as _CaptumLRP
from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES, SUPPORTED_NON_LINEAR_LAYERS
from torch import Tensor, nn

from xaikit import Attribution, NotApplicableError
from xaikit_captum._captum_call import captum_call, relus_not_inplace

#: Functions and tensor methods that break relevance conservation when two of their arguments
#: depend on the input (a residual add, attention's products, gating).
_JOINS = {
    "add", "add_", "iadd", "sub", "sub_", "isub", "mul", "mul_", "imul", "truediv", "div",
    "div_", "itruediv", "matmul", "bmm", "einsum", "baddbmm", "addmm", "addcmul",
}
#: Nonlinear functions that Captum's LRP passes by their plain gradient.
_NONLINEAR = {
    "softmax", "log_softmax", "sigmoid", "tanh", "gelu", "silu", "softplus", "elu", "selu",
    "mish", "hardswish", "layer_norm", "group_norm", "normalize", "exp", "log", "pow", "sqrt",
    "rsqrt", "reciprocal",
}


class LRP(Attribution):
    """The target logit redistributed backwards, layer by layer, onto the input pixels.

    Relevance starts as ``R = f_c(x)`` at the output and flows to each layer's inputs in
    proportion to their contributions ``z_ij = a_i w_ij`` (Captum's default rule for every
    layer, the epsilon rule with ``eps = 1e-9``)::

        R_i = sum_j  z_ij / (sum_i' z_i'j + eps * sign(.))  *  R_j

    ReLU, Dropout and Tanh modules pass relevance unchanged. Up to what biases and epsilon
    absorb, relevance is conserved: each map sums to about ``f_c(x)``; the per-image gap
    ``f_c(x) - sum(map)`` (Captum's convergence delta) is kept in :attr:`last_delta`.

    Applies where Captum's rules cover the model, checked in the constructor:

    * every leaf module must be one Captum has a rule for: Conv2d, Linear, BatchNorm2d,
      MaxPool1-3d, AvgPool2d, AdaptiveAvgPool2d, ReLU, Dropout, Tanh (or a module given its
      own ``rule`` attribute). Any other (``nn.Identity``, ``nn.Flatten``,
      ``nn.AdaptiveMaxPool2d``, a custom module without children...) makes the constructor
      raise :class:`xaikit.NotApplicableError` naming the type and the layer;
    * operations written as functions in ``forward`` get no rule: Captum passes relevance
      through them by their plain gradient, which breaks conservation wherever two
      input-dependent tensors meet (a residual ``+``, attention's ``einsum``/``matmul``, a
      gating ``*``) or a function is nonlinear (``softmax``, ``sigmoid``, ``layer_norm``...).
      On ULTIMUS (residual attention blocks) the maps summed to about -4e4 times the logit.
      A copy of the model is traced with ``torch.fx``; such functions raise
      :class:`xaikit.NotApplicableError` naming them and their module. A model that cannot
      be traced (data-dependent control flow) is checked by its layers only. Linear shape
      functions (``flatten``, ``mean``, ``reshape``, adding a constant...) are fine.

    In-place ReLUs are switched off for the call; the ``activations`` attributes and rules
    Captum leaves on layers are cleaned up (a rule the user set is kept).

    Cost: two forward passes and one backward pass.

    Output: ``[B, H, W]``, the channel sum of Captum's ``[B, C, H, W]``; **signed**, logit units.
    """

    name = "lrp"
    uses_layer = False
    signed = True
    class_discriminative = True
    scale = "signed, logit units; each map sums to about f_c(x) (gap in last_delta)"

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        super().__init__(model, layer)
        missing = unsupported_layers(model) or unsupported_functions(model)
        if missing:
            listed = ", ".join(f"{kind} ({where!r})" for kind, where in missing.items())
            raise NotApplicableError(
                f"lrp cannot explain {type(model).__name__}: Captum's LRP has no rule for {listed}"
            )
        self.last_delta: Tensor | None = None

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        saved = {
            module: {k: vars(module)[k] for k in ("rule", "activations") if k in vars(module)}
            for module in self.model.modules()
        }
        try:
            with captum_call(self.model), relus_not_inplace(self.model):
                maps, delta = _CaptumLRP(self.model).attribute(
                    x, target=target, return_convergence_delta=True
                )
        finally:
            for module, kept in saved.items():
                for key in ("rule", "activations"):
                    if key in kept:
                        setattr(module, key, kept[key])
                    elif key in vars(module):
                        delattr(module, key)
        self.last_delta = delta.detach().reshape(-1)
        return maps


def unsupported_layers(model: nn.Module) -> dict[str, str]:
    """Type name -> first layer name of the leaf modules Captum's LRP has no rule for.

    The leaves are found as Captum finds them (children, recursively); a leaf with its own
    ``rule`` attribute counts as covered.
    """
    supported = tuple(SUPPORTED_LAYERS_WITH_RULES) + tuple(SUPPORTED_NON_LINEAR_LAYERS)
    missing: dict[str, str] = {}

    def walk(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            path = f"{prefix}.{name}" if prefix else name
            if next(child.children(), None) is not None:
                walk(child, path)
            elif type(child) not in supported and not hasattr(child, "rule"):
                missing.setdefault(type(child).__name__, path)

    walk(model, "")
    return missing


def unsupported_functions(model: nn.Module) -> dict[str, str]:
    """Function name -> module path of the functions in ``model``'s forward that Captum's LRP
    passes by their gradient although they break conservation (see :class:`LRP`).

    A deep copy of the model is traced with ``torch.fx`` (so tracing cannot touch the model);
    when the copy or the trace fails, nothing is reported.
    """
    try:
        graph = torch.fx.symbolic_trace(copy.deepcopy(model)).graph
    except Exception:  # noqa: BLE001  (untraceable control flow or modules: layers only)
        return {}
    dependent: set[torch.fx.Node] = set()
    found: dict[str, str] = {}
    for node in graph.nodes:
        inputs: list[torch.fx.Node] = []
        torch.fx.node.map_arg((node.args, node.kwargs), inputs.append)
        if node.op == "placeholder" or any(arg in dependent for arg in inputs):
            dependent.add(node)
        if node.op not in ("call_function", "call_method"):
            continue
        name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
        joined = sum(arg in dependent for arg in inputs)
        if name in _NONLINEAR and joined:
            kind = name
        elif name in _JOINS and joined >= 2:
            kind = f"{name} of two tensors"
        else:
            continue
        stack = node.meta.get("nn_module_stack") or {}
        found.setdefault(kind, next(reversed(stack), "forward") if stack else "forward")
    return found
