"""Printing what comes from outside (class, model and method names, file names, error text).

Everything from a data set, a run folder or a plugin is printed as plain text: rich markup in a
name (``[link=...]``, ``[/oops]``) is not interpreted, and control characters (ANSI / OSC
escape sequences, newlines that would forge a second ``error:`` line) are shown as ``\\xNN``.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text


def one_line(value: Any) -> str:
    """``str(value)`` as one printable line: every non-printable character escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))


def plain(value: Any) -> Text:
    """A rich ``Text`` of :func:`one_line` (no markup, no escape sequences)."""
    return Text(one_line(value))
