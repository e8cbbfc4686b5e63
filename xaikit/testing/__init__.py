"""Pytest fixtures and small models shared by the core's, the plugins' and third parties' tests.

The root ``conftest.py`` loads this module with ``pytest_plugins = ["xaikit.testing"]``; a plugin
author does the same in their own ``conftest.py``. The registry-wide contract tests live in
:mod:`xaikit.testing.test_contract`: after ``pip install``-ing a plugin, run them with
``python -m pytest --pyargs xaikit.testing.test_contract``.
"""

from __future__ import annotations

from typing import Iterator

import pytest
import torch
from torch import nn

from xaikit.plugins import PluginManager, make_plugin_manager, set_plugin_manager
from xaikit.testing.checks import hooks_left, module_flags, no_network, write_cifar10_batches
from xaikit.testing.nets import ContractNet, ForwardFailure, NoConvNet

__all__ = [
    "ContractNet",
    "ForwardFailure",
    "NoConvNet",
    "TinyConvNet",
    "hooks_left",
    "module_flags",
    "no_network",
    "plugin_manager",
    "write_cifar10_batches",
]


@pytest.fixture
def plugin_manager() -> Iterator[PluginManager]:
    """A fresh plugin manager, installed as the process-wide one for the test."""
    pm = make_plugin_manager()
    set_plugin_manager(pm)
    try:
        yield pm
    finally:
        set_plugin_manager(None)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


class TinyConvNet(nn.Module):
    """A 3x3 conv (``conv``), a ReLU (``act``), a global mean and a linear layer (``fc``): the
    smallest model with a spatial layer for CAM methods, for tests that train a real run."""

    def __init__(self, num_classes: int = 10, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).mean(dim=(2, 3)))
