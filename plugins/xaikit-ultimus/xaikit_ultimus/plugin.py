"""The ``ultimus`` entry point: registers the ULTIMUS model spec and its training recipe."""

from __future__ import annotations

from typing import Callable

from xaikit import ModelSpec, Recipe, hookimpl
from xaikit_ultimus.model import build_ultimus

#: The default recipe, chosen by experiment (see the plugin's README.md for the measurements).
ULTIMUS_RECIPE = Recipe(
    epochs=24,
    batch_size=128,
    optimizer="adam",
    max_lr=1e-2,
    pct_start=0.25,
    weight_decay=5e-4,
    label_smoothing=0.0,
    augment=("crop", "flip"),
    crop_padding=4,
)


@hookimpl
def register_models(register: Callable) -> None:
    """Register ``ultimus`` (CAM target layer ``conv3``)."""
    register(
        ModelSpec(
            name="ultimus",
            factory=build_ultimus,
            target_layer="conv3",
            recipe=ULTIMUS_RECIPE,
            input_shape=(3, 32, 32),
            num_classes=10,
            description="3 conv blocks > GAP > 4 ULTIMUS attention blocks > FC",
        )
    )
