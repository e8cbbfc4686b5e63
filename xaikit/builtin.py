"""Built-in plugin of the core: the CIFAR-10 and synthetic data sets."""

from __future__ import annotations

from typing import Callable

from xaikit.hookspecs import hookimpl
from xaikit.specs import DatasetSpec


@hookimpl
def register_datasets(register: Callable) -> None:
    from xaikit.data.cifar10 import load_cifar10
    from xaikit.data.synthetic import load_synthetic

    register(
        DatasetSpec(
            "cifar10",
            load_cifar10,
            "CIFAR-10: torchvision download, or --data batches folder / ImageFolder / tarball",
        )
    )
    register(
        DatasetSpec("synthetic", load_synthetic, "10 classes of generated shapes, for tests and smoke runs")
    )
