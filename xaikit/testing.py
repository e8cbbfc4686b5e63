"""Pytest fixtures shared by the core's and the plugins' tests (loaded by the root conftest.py)."""

from __future__ import annotations

from typing import Iterator

import pytest
import torch

from xaikit.plugins import PluginManager, make_plugin_manager, set_plugin_manager


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
