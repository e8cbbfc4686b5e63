"""Tiny seeded networks the contract tests run attribution methods on."""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Classes of :class:`ContractNet` and :class:`NoConvNet`.
NUM_CLASSES = 5


class ForwardFailure(Exception):
    """Raised by :class:`ContractNet` on the forward call numbered ``fail_on_call``."""


class ContractNet(nn.Module):
    """conv-bn-relu, max-pool, conv-relu (the target layer), 2x2 average pool, dropout, linear.

    It counts its forward calls, records whether any submodule was in training mode during
    each, and raises :class:`ForwardFailure` (after the target layer ran) on call
    ``fail_on_call``. Any input size of at least 2x2 works.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(8 * 4, NUM_CLASSES)
        self.xaikit_target_layer = "features.4"
        self.fail_on_call: int | None = None
        self.calls = 0
        self.training_seen: list[bool] = []
        with torch.no_grad():
            bn = self.features[1]
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.training_seen.append(any(m.training for m in self.modules()))
        a = self.features(x)
        if self.fail_on_call == self.calls:
            raise ForwardFailure(f"forward call {self.calls} fails on purpose")
        return self.head(self.dropout(self.pool(a).flatten(1)))


class NoConvNet(nn.Module):
    """A two-layer perceptron on flattened ``3 x height x width`` images: no spatial layer."""

    def __init__(self, height: int, width: int, hidden: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3 * height * width, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x.flatten(1))))
