"""The fresh plugin manager fixture, also when these tests run outside xaikit's checkout."""

from xaikit.testing import plugin_manager  # noqa: F401
