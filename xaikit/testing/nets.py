"""Tiny seeded networks the contract tests run attribution methods on."""

from __future__ import annotations

import functools

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


#: Training steps and batch size of :func:`trained_net` (about 10 s on two CPU cores).
STEPS, BATCH = 200, 64


class ShapesNet(nn.Module):
    """conv-bn-relu, max-pool, conv-relu (the CAM layer ``features.5``, 16 x 16 x 16 on 32 x 32
    images), global average pooling, one linear layer: every CAM method applies, ``cam`` too."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        )
        self.fc = nn.Linear(16, num_classes)
        self.xaikit_target_layer = "features.5"

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


@functools.lru_cache(maxsize=1)
def trained_shapes() -> tuple[nn.Module, Tensor, Tensor]:
    """``(model, images, labels)``: :class:`ShapesNet` trained for :data:`STEPS` seeded Adam
    steps on the synthetic data set (about 99% test accuracy), in eval mode, and 32 normalised
    test images it classifies correctly, with their labels."""
    from xaikit.data import load_data, normalize
    from xaikit.plugins import make_plugin_manager, set_plugin_manager

    set_plugin_manager(make_plugin_manager())
    try:
        data = load_data("synthetic")
    finally:
        set_plugin_manager(None)
    torch.manual_seed(0)
    model = ShapesNet()
    x = normalize(data.train_images, data.mean, data.std)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        rows = torch.randint(0, len(x), (BATCH,), generator=generator)
        loss = nn.functional.cross_entropy(model(x[rows]), data.train_labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test = normalize(data.test_images[:64], data.mean, data.std)
    with torch.no_grad():
        correct = model(test).argmax(dim=1) == data.test_labels[:64]
    assert int(correct.sum()) >= 32, "the test model did not learn the synthetic shapes"
    return model, test[correct][:32], data.test_labels[:64][correct][:32]
