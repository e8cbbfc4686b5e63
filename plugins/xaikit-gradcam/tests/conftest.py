"""Fixtures of the CAM plugin's tests: a small CNN trained on the synthetic shapes, once per
session, and Spearman's rank correlation of two maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import Tensor, nn

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


@pytest.fixture(scope="session")
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


def spearman(a: Tensor, b: Tensor) -> float:
    """Mean over images of Spearman's rank correlation of maps ``a[i]`` and ``b[i]``. A pair
    where one map is constant (a ReLU'd map with no evidence) and the other is not counts 0,
    two constant maps count 1."""
    values = []
    for u, v in zip(a.flatten(1).cpu().numpy(), b.flatten(1).cpu().numpy()):
        if np.ptp(u) == 0 or np.ptp(v) == 0:
            values.append(float(np.ptp(u) == 0 and np.ptp(v) == 0))
        else:
            values.append(float(spearmanr(u, v)[0]))
    return float(np.mean(values))


@pytest.fixture(scope="session")
def rank_correlation():
    """:func:`spearman`, for the tests (conftest helpers are not importable by name)."""
    return spearman
