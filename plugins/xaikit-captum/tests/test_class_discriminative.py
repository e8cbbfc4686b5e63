"""Every Captum method but deconvolution declares ``class_discriminative = True``: the maps for
two classes of a trained model must differ in ranking, not only in value. Deconvolution's
backward pass ignores which units were active, so its maps for two classes nearly agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import Tensor, nn
from xaikit_captum import ALL_METHODS

#: Cheaper settings for the perturbation methods; the flag does not depend on them.
CHEAP = {
    "shapley-sampling": {"n_samples": 4},
    "lime": {"n_samples": 96},
    "kernel-shap": {"n_samples": 96},
    "gradient-shap": {"n_samples": 16},
}


class ShapesNet(nn.Module):
    """conv-bn-relu, max-pool, conv-relu, global average pooling, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        )
        self.fc = nn.Linear(16, 10)
        self.xaikit_target_layer = "features.5"

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, Tensor, Tensor]:
    """ShapesNet after 100 seeded Adam steps on the synthetic shapes, and 8 test images it
    classifies correctly with their labels."""
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
    for _ in range(100):
        rows = torch.randint(0, len(x), (64,), generator=generator)
        loss = nn.functional.cross_entropy(model(x[rows]), data.train_labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test = normalize(data.test_images[:32], data.mean, data.std)
    with torch.no_grad():
        correct = model(test).argmax(dim=1) == data.test_labels[:32]
    assert int(correct.sum()) >= 8, "the test model did not learn the synthetic shapes"
    return model, test[correct][:8], data.test_labels[:32][correct][:8]


def spearman(a: Tensor, b: Tensor) -> float:
    """Mean over images of Spearman's rank correlation of ``a[i]`` and ``b[i]`` (a constant map
    against a varying one counts 0, two constant maps 1)."""
    values = []
    for u, v in zip(a.flatten(1).numpy(), b.flatten(1).numpy()):
        if np.ptp(u) == 0 or np.ptp(v) == 0:
            values.append(float(np.ptp(u) == 0 and np.ptp(v) == 0))
        else:
            values.append(float(spearmanr(u, v)[0]))
    return float(np.mean(values))


@pytest.mark.parametrize(
    "method_cls", [c for c in ALL_METHODS if c.name != "deconvolution"], ids=lambda cls: cls.name
)
def test_maps_of_two_classes_of_a_trained_model_differ(method_cls, trained) -> None:
    assert method_cls.class_discriminative
    model, x, labels = trained
    method = method_cls(model, **CHEAP.get(method_cls.name, {}))
    rho = spearman(method(x, labels), method(x, (labels + 5) % 10))
    assert rho < 0.9, f"{method_cls.name}: Spearman {rho:.3f} between the maps of two classes"
