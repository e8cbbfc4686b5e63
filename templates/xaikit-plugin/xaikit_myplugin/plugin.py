"""The plugin module named by the ``xaikit`` entry point: one function per hook."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

import xaikit
from xaikit import Attribution, DataBundle, DatasetSpec, ModelSpec, Recipe


class MyCNN(nn.Module):
    """Four 3x3 conv blocks (16, 32, 32, 48 channels), global average pooling, a linear head."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()

        def block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
            layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))

        self.features = nn.Sequential(
            block(3, 16, False), block(16, 32, True), block(32, 32, True), block(32, 48, False)
        )
        self.head = nn.Linear(48, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class GradientNorm(Attribution):
    """L2 norm over channels of the input gradient of the target logit.

    ``map[i, h, w] = || d y_c / d x[i, :, h, w] ||_2`` (non-negative, unnormalised).
    """

    name = "gradient-norm"
    signed = False
    scale = "L2 norm of the input gradient, >= 0, unnormalised"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            score = self.model(x).gather(1, target[:, None]).sum()
            (grad,) = torch.autograd.grad(score, x)
        return grad.norm(dim=1)


def load_stripes(path: str | None, cache_dir: Path) -> DataBundle:
    """Generated 32x32 stripe images in four orientations (class = orientation)."""
    if path is not None:
        raise xaikit.XaikitError("dataset 'my-stripes' is generated; it takes no --data path")
    g = torch.Generator().manual_seed(0)

    def make(n: int) -> tuple[Tensor, Tensor]:
        labels = torch.arange(n) % 4
        yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
        coords = torch.stack([yy, xx, yy + xx, yy - xx])[labels]  # [n, 32, 32]
        phase = torch.rand(n, 1, 1, generator=g) * 6.28
        wave = torch.sin(coords * 0.8 + phase) * 0.5 + 0.5
        noise = torch.rand(n, 3, 32, 32, generator=g) * 0.3
        images = (wave[:, None] * 0.7 + noise).clamp(0, 1) * 255
        return images.to(torch.uint8), labels

    train_x, train_y = make(400)
    test_x, test_y = make(100)
    return DataBundle(
        train_x, train_y, test_x, test_y,
        classes=["vertical", "horizontal", "diagonal", "antidiagonal"],
        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), source="generated stripes",
    )


@xaikit.hookimpl
def register_models(register: Callable) -> None:
    register(
        ModelSpec(
            name="my-cnn",
            factory=MyCNN,
            target_layer="features.3",
            recipe=Recipe(epochs=10, batch_size=128, optimizer="adam", max_lr=1e-2, augment=("flip",)),
            description="example 4-layer CNN from the plugin template",
        )
    )


@xaikit.hookimpl
def register_attributions(register: Callable) -> None:
    register(GradientNorm)


@xaikit.hookimpl
def register_datasets(register: Callable) -> None:
    register(DatasetSpec("my-stripes", load_stripes, "generated stripes, 4 orientations"))
