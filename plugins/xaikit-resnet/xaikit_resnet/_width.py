"""Channel-width scaling shared by the two ResNets."""

from __future__ import annotations

from xaikit import XaikitError


def check_model_args(num_classes: int, width: float) -> None:
    """Raise ``XaikitError`` for a class count or width a user could mistype."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise XaikitError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not width > 0:
        raise XaikitError(f"width must be a positive multiplier, got {width!r}")


def scaled_channels(channels: int, width: float) -> int:
    """``round(channels * width)``, at least 1: the channel count of a narrowed layer."""
    return max(1, int(round(channels * width)))
