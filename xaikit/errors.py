"""Errors a user can cause. The CLI turns each into one line and a non-zero exit."""

from __future__ import annotations


class XaikitError(Exception):
    """A problem the user can fix (bad input, missing data, unknown name...).

    The message is a single line that says what is wrong and, where possible, what to do.
    """


class UnknownNameError(XaikitError, KeyError):
    """A model, attribution or dataset name that no plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(XaikitError):
    """Two plugins registered the same name."""


class DataError(XaikitError):
    """Missing, unreadable or corrupt data."""


class RunError(XaikitError):
    """A run folder that is not one, or a checkpoint that does not fit."""


class DivergedError(XaikitError):
    """Training produced a non-finite loss; ``lr`` is the learning rate of that batch."""

    def __init__(self, message: str, lr: float | None = None) -> None:
        super().__init__(message)
        self.lr = lr


class NotApplicableError(XaikitError):
    """An attribution method that cannot explain this model (e.g. a CAM method on a model with
    no spatial layer). ``explain`` and ``report`` skip such a method with a note."""
