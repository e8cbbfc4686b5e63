"""What plugins register: model specs (with their options), training recipes, dataset specs and
the data bundle."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from xaikit.errors import XaikitError
from xaikit.options import ModelOption, json_or_str, takes_var_keyword, model_options


@dataclass(frozen=True)
class Recipe:
    """A default training recipe; `xaikit train MODEL` with no flags runs it.

    Attributes:
        epochs: Number of epochs.
        batch_size: Images per optimizer step.
        optimizer: ``"adam"`` (AdamW-style decoupled decay) or ``"sgd"`` (momentum).
        max_lr: Peak learning rate of the one-cycle schedule.
        pct_start: Fraction of all steps spent warming up to ``max_lr``.
        weight_decay: Weight decay.
        momentum: SGD momentum (ignored by Adam).
        nesterov: Nesterov momentum for SGD.
        label_smoothing: Label smoothing of the cross-entropy loss.
        div_factor: ``initial_lr = max_lr / div_factor``.
        final_div_factor: ``final_lr = initial_lr / final_div_factor``.
        augment: Batch augmentations, a subset of ``("crop", "flip", "altflip", "cutout")``;
            ``altflip`` is Jordan's (2024) alternating flip: each image is flipped in every
            other epoch, starting flipped or not at random (instead of ``flip``'s coin per
            image per epoch).
        crop_padding: Padding (pixels, reflect) of the random crop.
        cutout: Side of the cutout square in pixels.
        schedule: ``"one-cycle"`` (PyTorch's ``OneCycleLR``: cosine, momentum cycled for SGD)
            or ``"triangular"`` (linear up from ``max_lr / div_factor`` to ``max_lr`` over
            ``pct_start`` of the steps, then linear down to ``max_lr / (div_factor *
            final_div_factor)``, momentum constant).
        norm_lr_scale: Learning-rate multiplier of the normalisation layers' parameters
            (BatchNorm, GroupNorm, LayerNorm...); their weight decay is divided by it, so the
            decay per step is that of the other parameters.
        lookahead_every: Lookahead (Zhang et al. 2019) as airbench uses it: every this many
            steps the slow weights move towards the trained ones, ``slow = a slow + (1 - a)
            fast``, and the trained ones are set to them, with ``a = lookahead_alpha *
            (step / steps)^3``; after the last step the model holds the slow weights. 0: off.
        lookahead_alpha: The final ``a`` of the lookahead.
        tta_shift: Test-time augmentation views (with ``--tta``): 0 is the image and its
            mirror; ``k > 0`` adds both views shifted by ``k`` pixels up-left and down-right
            (reflect padding) at half the weight in all (airbench's multi-crop TTA).
    """

    epochs: int = 24
    batch_size: int = 512
    optimizer: str = "adam"
    max_lr: float = 1e-2
    pct_start: float = 0.25
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    label_smoothing: float = 0.0
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    augment: tuple[str, ...] = ("crop", "flip", "cutout")
    crop_padding: int = 4
    cutout: int = 8
    schedule: str = "one-cycle"
    norm_lr_scale: float = 1.0
    lookahead_every: int = 0
    lookahead_alpha: float = 0.95**5
    tta_shift: int = 0

    def replace(self, **changes: Any) -> "Recipe":
        """Return a copy with the given fields changed (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["augment"] = list(self.augment)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        d = dict(d)
        d["augment"] = tuple(d.get("augment", ()))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

@dataclass(frozen=True)
class ModelSpec:
    """A model a plugin offers.

    Attributes:
        name: Registry name, e.g. ``"ultimus"``.
        factory: ``factory(num_classes=..., **kwargs) -> nn.Module``. Its other keyword
            parameters are the model's options (``xaikit train --model-arg KEY=VALUE``), typed
            by their annotations or defaults; see :meth:`options`.
        target_layer: Default layer for CAM methods, named as in ``model.named_modules()``;
            ``None`` when the model has no spatial layer.
        recipe: Default training recipe.
        input_shape: ``(C, H, W)`` of one input image.
        num_classes: Number of output classes of the default model.
        description: One line for ``xaikit plugins list``.
        init_from_data: ``init_from_data(model, data: DataBundle)``, called once on a new
            model before its first training step (not on resume: the checkpoint has the
            result), e.g. to set a layer from statistics of the training images.
        on_epoch_start: ``on_epoch_start(model, epoch)``, called before every training epoch
            (1-based, also after a resume), e.g. to freeze a parameter after some epochs.
    """

    name: str
    factory: Callable[..., nn.Module]
    target_layer: str | None
    recipe: Recipe = field(default_factory=Recipe)
    input_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10
    description: str = ""
    init_from_data: Callable[[nn.Module, "DataBundle"], None] | None = None
    on_epoch_start: Callable[[nn.Module, int], None] | None = None

    def create(self, **kwargs: Any) -> nn.Module:
        """Call the factory (``num_classes`` defaults to the spec's) and set the CAM layer.

        ``model.xaikit_target_layer`` is set only when the spec has a ``target_layer``.
        """
        kwargs.setdefault("num_classes", self.num_classes)
        model = self.factory(**kwargs)
        if self.target_layer is not None:
            model.xaikit_target_layer = self.target_layer  # default layer for CAM methods
        return model

    def options(self) -> dict[str, ModelOption]:
        """The factory's keyword options, in signature order (``num_classes`` excluded)."""
        return model_options(self.factory)

    def parse_model_args(self, pairs: list[str]) -> dict[str, Any]:
        """Turn CLI ``KEY=VALUE`` strings into typed factory keyword arguments.

        Each value is parsed by its option's type (see :meth:`ModelOption.parse`); a factory
        that takes ``**kwargs`` also accepts other keys, whose values are read as JSON, else
        kept as strings. A key given twice keeps its last value.

        Raises:
            XaikitError: A pair without ``=``, an unknown option, ``num_classes`` (it comes
                from the data set) or a value that does not fit its option's type.
        """
        options = self.options()
        kwargs: dict[str, Any] = {}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                raise XaikitError(f"model argument {pair!r} of {self.name!r} is not KEY=VALUE")
            if key == "num_classes":
                raise XaikitError(
                    f"num_classes of model {self.name!r} is not an option: it is the data set's "
                    "number of classes"
                )
            if key in options:
                kwargs[key] = options[key].parse(raw, self.name)
            elif takes_var_keyword(self.factory):
                kwargs[key] = json_or_str(raw)
            else:
                raise XaikitError(self._unknown_option(key, options))
        return kwargs

    def check_model_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Check already-typed factory arguments (e.g. a run's stored ``model_kwargs``).

        ``num_classes`` must be a positive int; every other key must be an option whose type
        the value fits (JSON lists are accepted for tuples, ints for floats); a factory with
        ``**kwargs`` takes other keys as they are.

        Returns:
            The arguments with values normalised to their option's type (lists to tuples...).

        Raises:
            XaikitError: An unknown option or a value of the wrong type (one line).
        """
        options = self.options()
        checked: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key == "num_classes":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise XaikitError(
                        f"num_classes of model {self.name!r} must be a positive int, got {value!r}"
                    )
                checked[key] = value
            elif key in options:
                checked[key] = options[key].check(value, self.name)
            elif takes_var_keyword(self.factory):
                checked[key] = value
            else:
                raise XaikitError(self._unknown_option(key, options))
        return checked

    def _unknown_option(self, key: str, options: dict[str, ModelOption]) -> str:
        if not options:
            return f"unknown option {key!r} of model {self.name!r}; it has no options"
        listed = ", ".join(option.describe() for option in options.values())
        return f"unknown option {key!r} of model {self.name!r}; options: {listed}"


@dataclass
class DataBundle:
    """A whole image-classification data set in memory.

    Images are ``uint8`` tensors ``[N, C, H, W]``; labels are ``int64`` ``[N]``.
    ``mean``/``std`` are per-channel statistics on the 0..1 scale used to normalise.
    ``forbidden_augment`` names augmentations that would change what an image shows (a flip
    turns a "left arrow" into a "right arrow"): training leaves them out of any recipe.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    forbidden_augment: tuple[str, ...] = ()

    def to(self, device: torch.device | str) -> "DataBundle":
        return dataclasses.replace(
            self,
            train_images=self.train_images.to(device),
            train_labels=self.train_labels.to(device),
            test_images=self.test_images.to(device),
            test_labels=self.test_labels.to(device),
        )


@dataclass(frozen=True)
class DatasetSpec:
    """A data set a plugin offers.

    Attributes:
        name: Registry name, e.g. ``"cifar10"``.
        load: ``load(path: str | None, cache_dir: pathlib.Path) -> DataBundle``. ``path`` is
            the user's ``--data`` value (``None`` means the plugin's default source).
        description: One line for ``xaikit plugins list``.
    """

    name: str
    load: Callable[..., DataBundle]
    description: str = ""
