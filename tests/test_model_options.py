"""Model options: introspected from the factory, parsed from ``KEY=VALUE``, checked when read
back."""

from __future__ import annotations

from typing import Literal, Optional

import pytest
from torch import nn

import xaikit
from xaikit.errors import XaikitError
from xaikit.options import REQUIRED, ModelOption
from xaikit.specs import ModelSpec


class Net(nn.Module):
    """A linear layer; the options only have to reach the constructor."""

    def __init__(
        self,
        num_classes: int = 10,
        residual: bool = False,
        width: int = 16,
        dropout: float = 0.1,
        norm: str = "batch",
        depth: Optional[int] = None,
        pool_after: tuple[bool, bool] = (True, False),
        mode: Literal["before", "after"] = "before",
    ) -> None:
        super().__init__()
        self.options = dict(residual=residual, width=width, dropout=dropout, norm=norm,
                            depth=depth, pool_after=pool_after, mode=mode)
        self.fc = nn.Linear(3, num_classes)


def untyped(num_classes=10, scale=2.0, label=None, *args, **kwargs) -> nn.Module:  # noqa: ANN001
    return nn.Linear(3, num_classes)


SPEC = ModelSpec("ultimus", Net, target_layer=None)
OPEN = ModelSpec("open", untyped, target_layer=None)


def test_options_come_from_the_signature_without_num_classes():
    options = SPEC.options()
    assert list(options) == ["residual", "width", "dropout", "norm", "depth", "pool_after", "mode"]
    assert options["residual"] == ModelOption("residual", bool, False)
    assert options["depth"].type_name == "int | None"
    assert options["pool_after"].type_name == "tuple[bool, bool]"
    assert options["mode"].describe() == "mode: 'before' | 'after' = 'before'"
    assert options["pool_after"].to_dict() == {
        "name": "pool_after", "type": "tuple[bool, bool]", "default": [True, False]
    }


def test_untyped_options_take_the_defaults_type_and_kwargs_are_not_options():
    options = OPEN.options()
    assert list(options) == ["scale", "label"]
    assert options["scale"].type is float and options["label"].type_name == "any"
    required = ModelSpec("r", lambda width, num_classes=10: nn.Linear(3, num_classes), None)
    assert required.options()["width"].default is REQUIRED
    assert required.options()["width"].describe() == "width: any (required)"


@pytest.mark.parametrize(
    ("pair", "key", "value"),
    [
        ("residual=true", "residual", True),
        ("residual=YES", "residual", True),
        ("residual=0", "residual", False),
        ("residual=No", "residual", False),
        ("width=32", "width", 32),
        ("width=-3", "width", -3),
        ("dropout=0.25", "dropout", 0.25),
        ("dropout=1", "dropout", 1.0),
        ("dropout=1e-3", "dropout", 1e-3),
        ("norm=layer", "norm", "layer"),
        ("norm=123", "norm", "123"),
        ("norm=", "norm", ""),
        ("depth=none", "depth", None),
        ("depth=NULL", "depth", None),
        ("depth=4", "depth", 4),
        ("pool_after=[false, true]", "pool_after", (False, True)),
        ("mode=after", "mode", "after"),
        (" width = 8", "width", 8),
    ],
)
def test_values_are_parsed_by_the_option_type(pair: str, key: str, value: object):
    parsed = SPEC.parse_model_args([pair])
    assert parsed == {key: value} and type(parsed[key]) is type(value)


@pytest.mark.parametrize(
    ("pair", "fragments"),
    [
        ("residual=maybe", ("option 'residual'", "'maybe'", "bool", "true/false")),
        ("width=1.5", ("option 'width'", "'1.5'", "int")),
        ("width=ten", ("option 'width'", "'ten'", "int")),
        ("width=true", ("option 'width'", "int")),
        ("dropout=a lot", ("option 'dropout'", "float")),
        ("depth=deep", ("option 'depth'", "int | None")),
        ("pool_after=[true]", ("option 'pool_after'", "tuple[bool, bool]")),
        ("pool_after=yes", ("option 'pool_after'",)),
        ("mode=middle", ("option 'mode'", "'before' | 'after'")),
        ("foo=1", ("unknown option 'foo' of model 'ultimus'", "options: residual: bool = False",
                   "width: int = 16")),
        ("width", ("'width'", "KEY=VALUE")),
        ("num_classes=3", ("num_classes", "data set")),
    ],
)
def test_a_bad_model_argument_is_one_line_naming_it(pair: str, fragments: tuple[str, ...]):
    with pytest.raises(XaikitError) as info:
        SPEC.parse_model_args([pair])
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_factory_with_kwargs_takes_unknown_keys_as_json_or_string():
    assert OPEN.parse_model_args(["scale=3", "extra=[1, 2]", "name=wide", "flag=true"]) == {
        "scale": 3.0, "extra": [1, 2], "name": "wide", "flag": True
    }
    assert OPEN.parse_model_args(["label=7"]) == {"label": 7}  # untyped option: JSON value


def test_stored_kwargs_are_checked_and_normalised():
    stored = {"num_classes": 3, "residual": True, "dropout": 1, "pool_after": [True, True],
              "depth": None, "mode": "after"}
    checked = SPEC.check_model_kwargs(stored)
    assert checked["pool_after"] == (True, True) and checked["dropout"] == 1.0
    assert isinstance(checked["dropout"], float)
    model = SPEC.create(**checked)
    assert model.options["pool_after"] == (True, True) and model.fc.out_features == 3


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"residual": "yes"}, "option 'residual'"),
        ({"width": 1.5}, "option 'width'"),
        ({"width": True}, "option 'width'"),
        ({"pool_after": [True]}, "option 'pool_after'"),
        ({"mode": "middle"}, "option 'mode'"),
        ({"foo": 1}, "unknown option 'foo'"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_stored_kwargs_of_the_wrong_type_are_one_line_errors(kwargs: dict, fragment: str):
    with pytest.raises(XaikitError, match=fragment) as info:
        SPEC.check_model_kwargs(kwargs)
    assert "\n" not in str(info.value)


def test_registered_models_parse_their_own_options(plugin_manager):
    spec = xaikit.get_model_spec("resnet18")
    assert spec.parse_model_args(["width=0.5"]) == {"width": 0.5}
    with pytest.raises(XaikitError, match="option 'width' of model 'resnet18' takes float"):
        spec.parse_model_args(["width=half"])
    expected = r"unknown option 'depth' of model 'resnet18'; options: width: float = 1.0"
    with pytest.raises(XaikitError, match=expected):
        spec.parse_model_args(["depth=3"])
