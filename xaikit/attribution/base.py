"""The base class of every attribution method.

A method is built once per model, ``method = Cls(model, layer=None)``, and called on batches,
``maps = method(x, target=None)``. The base class owns what every method must get right:

* targets: ``None`` (the predicted class), an ``int``, a list or a tensor of per-image classes;
* layers: named as in ``model.named_modules()``; a wrong name lists the valid ones; with no
  name, the model's default (``model.xaikit_target_layer``, set from the model spec) is used;
* hooks: registered in ``with`` blocks and removed in ``finally``, also when the call raises;
* state: the model is put in eval mode for the call and its train/eval flags are restored;
* output: a float tensor ``[B, H, W]`` at input resolution on the model's device.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaikit.errors import NotApplicableError, XaikitError
from xaikit.modules import forward_nhwc, model_device, module_mode

TargetLike = int | Sequence[int] | Tensor | None


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """Return the submodule called ``name`` in ``model.named_modules()``.

    Raises:
        XaikitError: if there is no such module; the message lists the valid names.
    """
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        valid = ", ".join(n for n in modules if n)
        raise XaikitError(f"no layer named {name!r} in {type(model).__name__}; valid layers: {valid}")
    return modules[name]


def default_layer_name(model: nn.Module) -> str:
    """The model's default CAM layer: ``model.xaikit_target_layer``, else its last ``Conv2d``."""
    name = getattr(model, "xaikit_target_layer", None)
    if name:
        return name
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise NotApplicableError(
            f"{type(model).__name__} has no spatial layer (no Conv2d and no target layer in its "
            "model spec); pass --layer NAME to pick one"
        )
    return convs[-1]


def check_targets(target: TargetLike, batch: int, num_classes: int, device: torch.device) -> Tensor:
    """Given classes as a ``long`` tensor ``[batch]`` on ``device`` (an ``int`` applies to
    every image).

    Raises:
        XaikitError: the wrong number of targets, or a class outside ``0..num_classes - 1``.
    """
    t = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch).clone()
    if t.numel() != batch:
        raise XaikitError(f"got {t.numel()} targets for a batch of {batch} images")
    if bool(((t < 0) | (t >= num_classes)).any()):
        raise XaikitError(f"target classes must be in 0..{num_classes - 1}, got {t.tolist()}")
    return t


def resolve_targets(target: TargetLike, logits_fn: Any, x: Tensor) -> Tensor:
    """Per-image target classes as a ``long`` tensor ``[B]`` on ``x``'s device.

    ``logits_fn(x)`` is called once without gradients: for the predicted class when ``target``
    is ``None``, else to check that every target is a valid class index.
    """
    with torch.no_grad():
        logits = logits_fn(x)
    if target is None:
        return logits.argmax(dim=1)
    return check_targets(target, x.shape[0], logits.shape[1], x.device)


class Attribution:
    """Base class of attribution methods.

    Subclasses set the class attributes and implement :meth:`attribute`.

    Attributes:
        name: Registry name (``"gradcam"``, ``"integrated-gradients"``...).
        uses_layer: Whether the method explains an internal layer (CAM methods).
        signed: Whether maps can be negative (``False``: non-negative maps).
        scale: One line on the scale of the output (e.g. "ReLU'd, unnormalised").
        class_discriminative: ``True`` for a method whose map depends on the target class (the
            contract tests check that two classes of a trained model get different maps).
        image_independent: ``True`` only for a control whose map is by design the same for
            every image (a centred Gaussian); the contract tests then do not require the map
            to change with the image.
    """

    name: ClassVar[str] = ""
    uses_layer: ClassVar[bool] = False
    signed: ClassVar[bool] = False
    scale: ClassVar[str] = ""
    image_independent: ClassVar[bool] = False
    class_discriminative: ClassVar[bool] = False

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        self.model = model
        self._num_classes: int | None = None
        self.layer_name: str | None = None
        self.layer: nn.Module | None = None
        if self.uses_layer:
            self.layer_name = layer or default_layer_name(model)
            self.layer = resolve_layer(model, self.layer_name)
        elif layer is not None:
            raise XaikitError(f"method {self.name!r} does not take a layer")

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def __call__(self, x: Tensor, target: TargetLike = None) -> Tensor:
        """Attribution maps ``[B, H, W]`` (float, input resolution, model's device)."""
        if x.ndim != 4:
            raise XaikitError(f"expected images [B, C, H, W], got shape {tuple(x.shape)}")
        x = x.to(self.device, dtype=torch.float32)
        with module_mode(self.model, training=False):
            targets = self._targets(target, x)
            maps = self.attribute(x, targets)
        maps = maps.detach().float()
        if maps.ndim == 4:  # [B, C, h, w] -> sum over channels
            maps = maps.sum(dim=1)
        if maps.shape[-2:] != x.shape[-2:]:
            maps = upsample(maps, x.shape[-2:])
        return maps

    def model_forward(self, x: Tensor) -> Tensor:
        """``self.model(x)``, fast on a CPU: images go in as channels_last tensors, which oneDNN's
        convolutions take without reordering (:func:`xaikit.modules.forward_nhwc`; a model that
        cannot take them runs on NCHW). Use it for a method's own forward passes, or pass it as
        a library's forward function (Captum's ``forward_func``)."""
        return forward_nhwc(self.model, x)

    def _targets(self, target: TargetLike, x: Tensor) -> Tensor:
        """Per-image classes ``[B]``. ``None`` costs one forward pass (the predictions); given
        targets are checked against the number of classes, which is learnt once per instance
        from one image, so that explaining given classes adds no forward pass per call."""
        if target is None:
            return resolve_targets(None, self.model, x)
        return check_targets(target, x.shape[0], self.num_classes(x), x.device)

    def num_classes(self, x: Tensor) -> int:
        """The model's number of classes, learnt once per instance from one forward pass of
        ``x[:1]`` (call it in eval mode)."""
        if self._num_classes is None:
            with torch.no_grad():
                self._num_classes = int(self.model(x[:1]).shape[1])
        return self._num_classes

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        """Compute maps for ``x`` ``[B, C, H, W]`` and ``target`` ``[B]`` (model in eval mode).

        Return ``[B, h, w]`` or ``[B, C, H, W]`` (channels are summed); the base class
        upsamples to input resolution.
        """
        raise NotImplementedError

    def _check_layer_output(self, output: Any) -> None:
        """Raise ``XaikitError`` unless the recorded layer returned a tensor."""
        if not isinstance(output, Tensor):
            raise XaikitError(
                f"layer {self.layer_name!r} returns {type(output).__name__}, not a tensor; "
                "pick another --layer"
            )

    @contextlib.contextmanager
    def capture(self, retain_grad: bool = True) -> Iterator[dict[str, Tensor]]:
        """Record the target layer's output (``"activation"``) while the block runs.

        With ``retain_grad``, ``captured["activation"].grad`` holds its gradient after
        ``backward()``. The rest of the model runs on a copy of the output, so an in-place
        operation that follows the layer cannot alter what was recorded. The hook is removed on
        exit, also on an exception.
        """
        if self.layer is None:
            raise XaikitError(f"method {self.name!r} has no layer to capture")
        captured: dict[str, Tensor] = {}

        def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> Tensor | None:
            self._check_layer_output(output)
            if retain_grad and output.requires_grad:
                output.retain_grad()
            captured["activation"] = output
            # The model goes on with a copy: an in-place op after the layer (ReLU(inplace=True)
            # after a BatchNorm) then changes the copy, never the recorded activation.
            return output.clone()

        handle = self.layer.register_forward_hook(hook)
        try:
            yield captured
        finally:
            handle.remove()

    def forward_with_layer(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One forward and backward pass: ``(activation, gradient, logits)``.

        ``gradient`` is d(sum of target logits)/d(activation); each image's logit only depends
        on its own activation in eval mode, so every image gets its own gradient.

        Only the part of the model after the layer records a graph: the forward pass runs
        without gradients up to the layer, whose output becomes a leaf that requires one, and
        gradients are switched back on from there (10% faster on ULTIMUS than recording the
        whole pass, with the same gradient). The model goes on with a copy of the output, as
        :meth:`capture` does. The grad mode is restored afterwards, also on an exception.

        On the CPU the images go in as channels_last (NHWC) tensors
        (:func:`xaikit.modules.forward_nhwc`): Grad-CAM on ULTIMUS at batch 64 takes 6.4 ms
        instead of 11.7 on 2 cores, with the same maps to float rounding.
        """
        if self.layer is None:
            raise XaikitError(f"method {self.name!r} has no layer to capture")
        captured: dict[str, Tensor] = {}

        def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> Tensor:
            self._check_layer_output(output)
            torch.set_grad_enabled(True)
            leaf = output.detach().requires_grad_(True)
            captured["activation"] = leaf
            return leaf.clone()

        def retry() -> None:  # the model cannot take NHWC tensors: forget the failed pass
            captured.clear()
            torch.set_grad_enabled(False)

        handle = self.layer.register_forward_hook(hook)
        enabled = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(False)
            logits = forward_nhwc(self.model, x.detach(), on_retry=retry)
        finally:
            handle.remove()
            torch.set_grad_enabled(enabled)
        activation = captured.get("activation")
        if activation is None:
            raise XaikitError(f"layer {self.layer_name!r} was not called in the model's forward")
        with torch.enable_grad():
            score = logits.gather(1, target[:, None]).sum()
            (grad,) = torch.autograd.grad(score, activation)
        return activation.detach(), grad.detach(), logits.detach()


def _linear_matrix(n_in: int, n_out: int, like: Tensor) -> Tensor:
    """``[n_out, n_in]``: 1-D linear resizing (``align_corners=False``) as a matrix."""
    eye = torch.eye(n_in, dtype=like.dtype, device=like.device)[None]
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=False)[0].t()


def upsample(maps: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize of ``[B, h, w]`` maps to ``size`` (``align_corners=False``).

    Bilinear resizing is separable, so it is computed as ``R_h @ maps @ R_w^T`` with the 1-D
    resizing matrices: the values of ``F.interpolate(..., mode="bilinear")`` to float rounding,
    3x faster for a batch of small CAMs on a CPU (0.07 ms against 0.23 ms for 64 maps of 8x8).
    """
    h, w = maps.shape[-2:]
    height, width = (int(v) for v in size)
    if not maps.is_floating_point():
        maps = maps.float()
    return _linear_matrix(h, height, maps) @ maps @ _linear_matrix(w, width, maps).t()
