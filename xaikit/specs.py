"""What plugins register: model specs (with their options), training recipes, dataset specs and
the data bundle."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import inspect
import json
import re
import types
import typing
from typing import Any, Callable, Literal, Union

import torch
from torch import nn

from xaikit.errors import XaikitError


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
        augment: Batch augmentations, a subset of ``("crop", "flip", "cutout")``.
        crop_padding: Padding (pixels, reflect) of the random crop.
        cutout: Side of the cutout square in pixels.
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

REQUIRED: Any = inspect.Parameter.empty  # ``ModelOption.default`` of a parameter without default
_NONE_WORDS = ("none", "null")
_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class ModelOption:
    """One keyword option of a model factory, e.g. ``residual: bool = True``.

    Attributes:
        name: Parameter name.
        type: Its annotation (``bool``, ``int | None``, ``tuple[bool, bool, bool]``...), else
            the default's type, else ``typing.Any``.
        default: The default value, or :data:`REQUIRED`.
    """

    name: str
    type: Any
    default: Any = REQUIRED

    @property
    def type_name(self) -> str:
        """The type as written in Python, e.g. ``"int | None"``."""
        return _type_name(self.type)

    def describe(self) -> str:
        """``"residual: bool = True"`` (or ``"width: int (required)"``)."""
        if self.default is REQUIRED:
            return f"{self.name}: {self.type_name} (required)"
        return f"{self.name}: {self.type_name} = {self.default!r}"

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "type", "default"}`` with a JSON-safe default (``None`` if required)."""
        default = None if self.default is REQUIRED else _jsonable(self.default)
        return {"name": self.name, "type": self.type_name, "default": default}

    def parse(self, raw: str, model: str = "?") -> Any:
        """The value of a CLI string for this option.

        ``bool`` takes true/false/yes/no/1/0 (any case); ``int`` and ``float`` are parsed
        strictly; ``str`` is taken as is; ``Optional[T]`` also takes ``none``/``null``;
        ``Literal`` takes one of its values; containers and other types are read as JSON.

        Raises:
            XaikitError: The value does not fit the type (one line naming option and value).
        """
        try:
            return _from_string(raw, self.type)
        except (ValueError, TypeError):
            raise XaikitError(self._mismatch(raw, model)) from None

    def check(self, value: Any, model: str = "?") -> Any:
        """An already-typed value, normalised (a list for a tuple, an int for a float).

        Raises:
            XaikitError: The value does not fit the type.
        """
        try:
            return _from_value(value, self.type)
        except (ValueError, TypeError):
            raise XaikitError(self._mismatch(value, model)) from None

    def _mismatch(self, value: Any, model: str) -> str:
        hint = " (true/false, yes/no, 1/0)" if _strip_optional(self.type) is bool else ""
        return (
            f"option {self.name!r} of model {model!r} takes {self.type_name}{hint}, "
            f"got {value!r}"
        )


def model_options(factory: Callable[..., Any]) -> dict[str, ModelOption]:
    """The keyword options of ``factory`` from its signature, in order.

    ``num_classes``, ``*args``, ``**kwargs`` and positional-only parameters are left out. A
    parameter annotated ``T`` with default ``None`` is read as ``T | None``.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have no signature
        return {}
    try:
        hints = typing.get_type_hints(factory.__init__ if isinstance(factory, type) else factory)
    except Exception:  # an annotation that does not resolve: fall back to the defaults
        hints = {}
    options = {}
    for p in signature.parameters.values():
        skipped_kinds = (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)
        if p.name == "num_classes" or p.kind in skipped_kinds:
            continue
        annotation = hints.get(p.name, p.annotation)
        if annotation is p.empty or isinstance(annotation, str):
            no_default = p.default is p.empty or p.default is None
            annotation = Any if no_default else type(p.default)
        if p.default is None and annotation is not Any and not _is_optional(annotation):
            annotation = typing.Optional[annotation]
        options[p.name] = ModelOption(p.name, annotation, p.default)
    return options


def _takes_var_keyword(factory: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD for p in parameters)


def _json_or_str(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _is_optional(tp: Any) -> bool:
    return _is_union(tp) and type(None) in typing.get_args(tp)


def _strip_optional(tp: Any) -> Any:
    if _is_optional(tp):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


def _type_name(tp: Any) -> str:
    if tp is Any:
        return "any"
    if tp is type(None):
        return "None"
    if _is_union(tp):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _from_string(raw: str, tp: Any) -> Any:
    """Parse a CLI string as ``tp``; raises ``ValueError`` when it does not fit."""
    text = raw.strip()
    if tp is Any:
        return _json_or_str(raw)
    if _is_union(tp):
        args = typing.get_args(tp)
        if type(None) in args and text.lower() in _NONE_WORDS:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _from_string(raw, arg)
                except (ValueError, TypeError):
                    continue
        raise ValueError(raw)
    if typing.get_origin(tp) is Literal:
        for choice in typing.get_args(tp):
            as_bool = _BOOL_WORDS.get(text.lower()) if isinstance(choice, bool) else None
            if str(choice) == text or as_bool is choice:
                return choice
        raise ValueError(raw)
    if tp is bool:
        if text.lower() not in _BOOL_WORDS:
            raise ValueError(raw)
        return _BOOL_WORDS[text.lower()]
    if tp is int:
        if not _INT.fullmatch(text):
            raise ValueError(raw)
        return int(text)
    if tp is float:
        if "_" in text:
            raise ValueError(raw)
        return float(text)
    if tp is str:
        return raw
    return _from_value(json.loads(raw), tp)


def _from_value(value: Any, tp: Any) -> Any:
    """``value`` checked against ``tp`` and normalised; raises ``ValueError`` if it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if _is_union(tp):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _from_value(value, arg)
                except (ValueError, TypeError):
                    continue
        raise ValueError(value)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ValueError(value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool):
        raise ValueError(value)
    if origin in (tuple, list, set, frozenset):
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise ValueError(value)
        items = list(value)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(items) != len(args):
                raise ValueError(value)
            return tuple(_from_value(v, a) for v, a in zip(items, args))
        item_type = args[0] if args else Any
        return origin(_from_value(v, item_type) for v in items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(value)
        key_type, value_type = args if args else (Any, Any)
        return {_from_value(k, key_type): _from_value(v, value_type) for k, v in value.items()}
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ValueError(value)
        return value
    return value  # a typing construct we do not check (Callable, TypeVar...)


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
    """

    name: str
    factory: Callable[..., nn.Module]
    target_layer: str | None
    recipe: Recipe = field(default_factory=Recipe)
    input_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10
    description: str = ""

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
            elif _takes_var_keyword(self.factory):
                kwargs[key] = _json_or_str(raw)
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
            elif _takes_var_keyword(self.factory):
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
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

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
