"""The xaikit entry point of this distribution: registers ``custom-resnet``, ``resnet18`` and
``airbench94``."""

from __future__ import annotations

from typing import Callable

from xaikit.hookspecs import hookimpl
from xaikit.specs import ModelSpec


@hookimpl
def register_models(register: Callable) -> None:
    from xaikit_resnet import airbench94
    from xaikit_resnet.custom_resnet import CUSTOM_RESNET_RECIPE, custom_resnet
    from xaikit_resnet.resnet18 import RESNET18_RECIPE, resnet18

    register(
        ModelSpec(
            name="custom-resnet",
            factory=custom_resnet,
            target_layer="layer3",
            recipe=CUSTOM_RESNET_RECIPE,
            description="Page's DAWNBench CIFAR-10 ResNet, 24-epoch one-cycle SGD",
        )
    )
    register(
        ModelSpec(
            name="resnet18",
            factory=resnet18,
            target_layer="layer4",
            recipe=RESNET18_RECIPE,
            description="CIFAR ResNet-18, He et al. 2016, 30-epoch one-cycle SGD",
        )
    )
    register(
        ModelSpec(
            name="airbench94",
            factory=airbench94.airbench94,
            target_layer="block3",
            recipe=airbench94.AIRBENCH94_RECIPE,
            description="Jordan's airbench94 (arXiv 2404.00498): 94% in 10 epochs, patch whitening",
            init_from_data=airbench94.init_from_data,
            on_epoch_start=airbench94.on_epoch_start,
        )
    )
