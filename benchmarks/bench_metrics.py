"""The scorecard's cost: ROAD imputation batched in torch vs per image with scipy, and each
metric group of the scorecard on ULTIMUS.

``test_road_imputation``: the same noise-free ROAD imputations (``B`` images x MoRF masks at
10, 20, ..., 90%) solved

* ``torch-batched-road-tol``: :func:`xaikit.metrics.linear_impute`, one conjugate-gradient
  solve over the whole batch to the relative residual ROAD uses (:data:`ROAD_TOL`, 1e-4), on
  the device: what a ROAD curve costs;
* ``torch-batched-1e-6``: the same solve to :func:`linear_impute`'s default 1e-6;
* ``scipy-per-image``: what the ROAD reference does, one ``scipy.sparse.linalg.spsolve`` (sparse
  LU) of the same system per image on the CPU, in a Python loop (system assembly included, as
  in the reference). The torch results are checked against it: to 1e-3 at 1e-6, and at
  ``ROAD_TOL`` to 1e-2 (normalised units; the noise ROAD adds is 1e-2 per pixel).

Images are real CIFAR-10 test images (``training_data``; the synthetic set without it),
normalised; masks come from smooth seeded random maps (4x4 upsampled, like a CAM of ULTIMUS's
``conv3``), the hardest case for the iterative solver (large connected holes).

``test_scorecard_group``: one metric group of :func:`xaikit.metrics.scorecard` (``road``,
``deletion_insertion``, ...) for Grad-CAM maps of 100 test images on a seeded random ULTIMUS,
the work of ``xaikit explain --method gradcam --images 100`` per group. Costs depend on shapes
and on the method's speed (``sensitivity_max``, ``randomization``, ``random_logit`` and
``emprt`` recompute maps), not on the weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness import DEVICE_PARAMS, record_throughput, synchronize
from torch import Tensor

from xaikit.metrics import GROUPS, ROAD_PERCENTILES, ScorecardSettings, linear_impute, scorecard
from xaikit.metrics.imputation import neighbour_kernel
from xaikit.metrics.ordering import pixel_ranks
from xaikit.metrics.road import ROAD_TOL, removal_masks

ROAD_IMAGES = 16
SCORECARD_IMAGES = 100


def bench_images(training_data: tuple[str, object], n: int) -> Tensor:
    """The first ``n`` test images of the ``training_data`` bundle, normalised, on the CPU."""
    from xaikit.data import normalize

    _name, data = training_data
    return normalize(data.test_images[:n].cpu(), data.mean, data.std)


def road_problem(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(images, remove)``: each image repeated at every ROAD percentile, MoRF masks."""
    n = len(x)
    maps = F.interpolate(torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(0)),
                         size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    ranks = pixel_ranks(maps).repeat(len(ROAD_PERCENTILES), 1)
    hw = x.shape[-2] * x.shape[-1]
    counts = torch.tensor([int(p * hw / 100) for p in ROAD_PERCENTILES]).repeat_interleave(n)
    remove = removal_masks(ranks, counts, torch.zeros(len(counts), dtype=torch.bool), x.shape[-2:])
    return x.repeat(len(ROAD_PERCENTILES), 1, 1, 1), remove


def scipy_impute_one(image: np.ndarray, remove: np.ndarray) -> np.ndarray:
    """One image's ROAD system assembled as sparse matrix and solved by ``spsolve`` (CPU)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    c, h, w = image.shape
    kernel = neighbour_kernel(torch.float64).numpy()
    idx = np.flatnonzero(remove)
    var = np.full(h * w, -1)
    var[idx] = np.arange(idx.size)
    ys, xs = np.divmod(idx, w)
    flat = image.reshape(c, -1)
    rows, cols, vals = [], [], []
    diag = np.zeros(idx.size)
    rhs = np.zeros((idx.size, c))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == dx == 0:
                continue
            yy, xx = ys + dy, xs + dx
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            q = (yy * w + xx)[inside]
            weight = kernel[dy + 1, dx + 1]
            diag[inside] += weight
            unknown = var[q] >= 0
            rows.append(np.flatnonzero(inside)[unknown])
            cols.append(var[q[unknown]])
            vals.append(np.full(int(unknown.sum()), -weight))
            known_rows = np.flatnonzero(inside)[~unknown]
            np.add.at(rhs, known_rows, weight * flat[:, q[~unknown]].T)
    rows.append(np.arange(idx.size))
    cols.append(np.arange(idx.size))
    vals.append(diag)
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(idx.size, idx.size)).tocsc()
    out = flat.copy()
    out[:, idx] = np.asarray(spsolve(a, rhs)).reshape(idx.size, c).T
    return out.reshape(c, h, w)


def scipy_impute(images: Tensor, remove: Tensor) -> Tensor:
    x, m = images.double().numpy(), remove.flatten(1).numpy()
    return torch.from_numpy(np.stack([scipy_impute_one(x[i], m[i]) for i in range(len(x))]))


# implementation -> (tolerance of the torch solve, agreement with scipy's direct solve)
IMPUTATIONS = {"torch-batched-road-tol": (ROAD_TOL, 1e-2), "torch-batched-1e-6": (1e-6, 1e-3),
               "scipy-per-image": (None, None)}


@pytest.mark.parametrize("implementation", list(IMPUTATIONS))
@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_road_imputation(benchmark, training_data, device, implementation) -> None:
    """Seconds to impute 16 images x 9 percentiles (144 images) by each implementation."""
    tol, atol = IMPUTATIONS[implementation]
    if tol is None:
        pytest.importorskip("scipy")
        if device != "cpu":
            pytest.skip("the scipy solve runs on the CPU only")
    images, remove = road_problem(bench_images(training_data, ROAD_IMAGES))
    images, remove = images.to(device), remove.to(device)

    def run() -> Tensor:
        if tol is None:
            return scipy_impute(images, remove)
        filled, info = linear_impute(images, remove, tol=tol)
        synchronize(device)
        assert info.converged
        return filled

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    if tol is not None:
        expected = scipy_impute(images[:9].cpu(), remove[:9].cpu())
        assert torch.allclose(out[:9].double().cpu(), expected, atol=atol)
    record_throughput(benchmark, len(images), percentiles=len(ROAD_PERCENTILES), masks="MoRF of 4x4 smooth maps",
                      tolerance="direct" if tol is None else f"{tol:g}")


_gradcam: dict[str, tuple[object, Tensor, Tensor, Tensor]] = {}


def gradcam_setup(training_data: tuple[str, object], device: str) -> tuple[object, Tensor, Tensor, Tensor]:
    """``(gradcam on a seeded ULTIMUS, images, targets, maps)`` on ``device``, built once."""
    import xaikit

    if device not in _gradcam:
        torch.manual_seed(0)
        model = xaikit.create_model("ultimus").to(device).eval()
        method = xaikit.get_attribution("gradcam")(model)
        x = bench_images(training_data, SCORECARD_IMAGES).to(device)
        targets = model(x).argmax(1)
        _gradcam[device] = (method, x, targets, method(x, targets))
    return _gradcam[device]


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_scorecard_group(benchmark, training_data, device, group) -> None:
    """Seconds of one scorecard metric group for Grad-CAM on 100 images (ULTIMUS, random init)."""
    import xaikit

    if "gradcam" not in xaikit.list_attributions():
        pytest.skip("the gradcam plugin is not installed")
    method, x, targets, maps = gradcam_setup(training_data, device)
    settings = ScorecardSettings(groups=(group,), n_boot=200)

    def run() -> dict:
        card = scorecard(method.model, method, x, targets, maps=maps, settings=settings)
        synchronize(device)
        return card

    card = benchmark.pedantic(run, rounds=2, warmup_rounds=0, iterations=1)
    assert card["n_images"] == SCORECARD_IMAGES
    record_throughput(benchmark, SCORECARD_IMAGES, model="ultimus", method="gradcam",
                      weights="random init (seed 0)")
