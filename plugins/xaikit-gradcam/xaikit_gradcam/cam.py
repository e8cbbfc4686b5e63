"""CAM, the original class activation map."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xaikit import NotApplicableError
from xaikit_gradcam.gradient_cam import ActivationCAM


def channel_count(model: nn.Module, layer_name: str) -> int | None:
    """The number of channels the layer outputs, read from the modules (no forward pass): the
    ``out_channels``/``num_features`` of its last submodule that has one (itself included),
    else of the last module registered before it; ``None`` if there is none."""
    modules = list(model.named_modules())
    position = [n for n, _ in modules].index(layer_name)
    own = [m for n, m in modules[position:] if n == layer_name or n.startswith(layer_name + ".")]
    for module in [*reversed(own), *(m for _, m in reversed(modules[:position]))]:
        for attribute in ("out_channels", "num_features"):
            value = getattr(module, attribute, None)
            if isinstance(value, int):
                return value
    return None


def find_classifier(model: nn.Module, layer_name: str) -> tuple[str, nn.Linear]:
    """The linear classifier that CAM needs right after the layer, from the modules alone.

    Every module with parameters registered after the layer (outside it) must be that one
    ``nn.Linear``; where none is registered after it (a model that defines its head first), the
    last ``nn.Linear`` of the model. Its ``in_features`` must equal the layer's channels when
    the modules tell them.

    Raises:
        NotApplicableError: there is no such layer (one line, the reason).
    """
    names = [n for n, _ in model.named_modules()]
    position = names.index(layer_name)
    inside = layer_name + "."
    after = [
        (n, m) for n, m in list(model.named_modules())[position + 1:]
        if not n.startswith(inside) and any(True for _ in m.parameters(recurse=False))
    ]
    if after:
        name, module = after[0]
        if not isinstance(module, nn.Linear) or len(after) > 1:
            listed = ", ".join(f"{n} ({type(m).__name__})" for n, m in after[:3])
            raise NotApplicableError(
                f"cam needs global average pooling then one linear layer after {layer_name!r}; "
                f"the layers with weights after it are {listed}{', ...' if len(after) > 3 else ''}"
            )
    else:
        linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise NotApplicableError(
                f"cam needs a linear classifier after {layer_name!r}; the model has none"
            )
        name, module = linears[-1]
    channels = channel_count(model, layer_name)
    if channels is not None and module.in_features != channels:
        raise NotApplicableError(
            f"cam needs global average pooling then one linear layer after {layer_name!r}; "
            f"{name!r} takes {module.in_features} features, the layer gives {channels} channels"
        )
    return name, module


class CAM(ActivationCAM):
    """CAM: the classifier's weights of the target class applied to the last feature map.

    Zhou, Khosla, Lapedriza, Oliva, Torralba, "Learning Deep Features for Discriminative
    Localization", CVPR 2016, arXiv:1512.04150. For a model whose logits are
    ``y = W mean_ij(A_ij) + b`` (global average pooling of the layer's output ``A`` ``[K, h, w]``,
    then one linear layer)::

        M_c = sum_k W_ck A^k

    and ``mean_ij M_c + b_c = y_c``: the map spreads the target logit (less its bias) over the
    locations. Grad-CAM of such a model is ``ReLU(M_c) / (h w)``.

    **Applicability.** The constructor finds the linear layer from the modules: the only module
    with weights registered after the layer, a ``nn.Linear`` whose ``in_features`` equals the
    layer's channels; otherwise it raises ``NotApplicableError`` (an MLP head, attention blocks
    as in ULTIMUS, a flattening head). Every call then checks, on the batch it explains, that
    the model's logits equal ``linear(mean of A)`` (relative tolerance 1e-4), and raises
    ``NotApplicableError`` if not (a max-pool or ReLU between the layer and the pooling: pick
    the layer right before the pooling with ``--layer``).

    Sign and scale: signed (``M_c`` is negative where the features speak against the class),
    unnormalised, in logit units; its mean over the ``h x w`` layer locations plus ``b_c`` is
    the target logit. Upsampled bilinearly to the input resolution. Cost: one forward pass.
    """

    name = "cam"
    signed = True
    class_discriminative = True
    scale = "signed, logit units: mean over the layer's locations + class bias = target logit"

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        """Args:
            model: A classifier ending in global average pooling and one linear layer.
            layer: Module name of the layer to explain (the one that is pooled); default: the
                model's target layer.

        Raises:
            NotApplicableError: the model has no linear layer right after ``layer``.
        """
        super().__init__(model, layer)
        self.classifier_name, self.classifier = find_classifier(model, self.layer_name)

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        activation, logits = self.activation_and_logits(x)
        with torch.no_grad():
            weight = self.classifier.weight
            if activation.shape[1] != weight.shape[1] or logits.shape[1] != weight.shape[0]:
                raise NotApplicableError(
                    f"cam: {self.classifier_name!r} maps {weight.shape[1]} features to "
                    f"{weight.shape[0]}, but layer {self.layer_name!r} gives {activation.shape[1]} "
                    f"channels and the model {logits.shape[1]} classes"
                )
            pooled = self.classifier(activation.mean(dim=(2, 3)))
            scale = 1e-4 * max(1.0, float(logits.abs().max()))
            gap = float((pooled - logits).abs().max())
            if gap > scale:
                raise NotApplicableError(
                    f"cam: the model's logits are not {self.classifier_name}(mean of "
                    f"{self.layer_name}) (off by {gap:.3g}): it needs global average pooling then "
                    "one linear layer right after the layer"
                )
            return torch.einsum("bk,bkij->bij", weight[target].to(activation.dtype), activation)
