"""Model options: the keyword parameters of a model factory, typed, parsed and checked.

``ModelSpec.options()`` lists them (``xaikit plugins list`` shows them with their defaults);
``--model-arg KEY=VALUE`` strings are parsed by their type, and the values stored in a run's
``config.json`` are checked again when the run is read back. Types come from the parameter's
annotation, else from its default: ``bool`` takes true/false, yes/no, 1/0; ``int`` and
``float`` are parsed strictly; ``str`` is taken as written; ``Optional[T]`` also takes
``none``/``null``; tuples, lists and dicts are JSON. A factory with ``**kwargs`` accepts any
other key (its value JSON, else a string).
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal, Union

from xaikit.errors import XaikitError

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

    def parse(self, raw: str, model: str = "?", kind: str = "model") -> Any:
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
            raise XaikitError(self._mismatch(raw, model, kind)) from None

    def check(self, value: Any, model: str = "?") -> Any:
        """An already-typed value, normalised (a list for a tuple, an int for a float).

        Raises:
            XaikitError: The value does not fit the type.
        """
        try:
            return _from_value(value, self.type)
        except (ValueError, TypeError):
            raise XaikitError(self._mismatch(value, model)) from None

    def _mismatch(self, value: Any, model: str, kind: str = "model") -> str:
        hint = " (true/false, yes/no, 1/0)" if _strip_optional(self.type) is bool else ""
        return (
            f"option {self.name!r} of {kind} {model!r} takes {self.type_name}{hint}, "
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


def takes_var_keyword(factory: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD for p in parameters)


def json_or_str(raw: str) -> Any:
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
        return json_or_str(raw)
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


def method_options(method_cls: type) -> dict[str, ModelOption]:
    """The options of an attribution method: the keyword parameters of its constructor after
    ``model`` and ``layer`` (``n_steps`` of integrated gradients, ``seed`` of RISE...)."""
    return {k: v for k, v in model_options(method_cls).items() if k not in ("model", "layer")}


def parse_method_args(pairs: list[str], methods: dict[str, type]) -> dict[str, dict[str, Any]]:
    """CLI ``METHOD.KEY=VALUE`` strings as ``{method: {key: typed value}}``.

    Args:
        pairs: The ``--method-arg`` values.
        methods: The methods of the command, name -> ``Attribution`` subclass.

    Raises:
        XaikitError: a pair not of that form, a method that is not among ``methods``, an
            unknown option (the message lists the method's options) or a value of the wrong type.
    """
    result: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        target, sep, raw = pair.partition("=")
        name, dot, key = target.rpartition(".")
        if not sep or not dot or not name or not key:
            raise XaikitError(f"--method-arg takes METHOD.KEY=VALUE, not {pair!r}")
        if name not in methods:
            raise XaikitError(
                f"--method-arg {pair!r}: method {name!r} is not among this command's methods "
                f"({', '.join(methods)})"
            )
        options = method_options(methods[name])
        if key not in options:
            listed = ", ".join(o.describe() for o in options.values()) or "none"
            raise XaikitError(f"unknown option {key!r} of method {name!r}; options: {listed}")
        result.setdefault(name, {})[key] = options[key].parse(raw, name, kind="method")
    return result

