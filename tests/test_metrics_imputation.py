"""ROAD's noisy linear imputation (xaikit.metrics.imputation) against a direct dense solve."""

from __future__ import annotations

import warnings

import pytest
import torch

from xaikit.errors import XaikitError
from xaikit.metrics import ImputationConvergenceWarning, linear_impute, noisy_linear_impute
from xaikit.metrics.imputation import neighbour_kernel, neighbour_sum

OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def dense_impute(image: torch.Tensor, remove: torch.Tensor) -> torch.Tensor:
    """The ROAD system written out pixel by pixel, as the reference builds it, solved densely.

    Row of removed pixel i: ``s_i x_i - sum_{removed j} w_ij x_j = sum_{kept j} w_ij v_j`` with
    ``s_i`` the sum of the weights of the neighbours inside the image.
    """
    c, h, w = image.shape
    kernel = neighbour_kernel(torch.float64)
    idx = remove.flatten().nonzero().flatten().tolist()
    var = {p: k for k, p in enumerate(idx)}
    a = torch.zeros(len(idx), len(idx), dtype=torch.float64)
    b = torch.zeros(len(idx), c, dtype=torch.float64)
    flat = image.reshape(c, -1).double()
    for k, p in enumerate(idx):
        y, x = divmod(p, w)
        for dy, dx in OFFSETS:
            yy, xx = y + dy, x + dx
            if not (0 <= yy < h and 0 <= xx < w):
                continue  # outside: dropped, i.e. the weights are renormalised over the inside
            weight = kernel[dy + 1, dx + 1]
            a[k, k] += weight
            q = yy * w + xx
            if q in var:
                a[k, var[q]] -= weight
            else:
                b[k] += weight * flat[:, q]
    out = flat.clone()
    if idx:
        out[:, idx] = torch.linalg.solve(a, b).T
    return out.view(c, h, w)


def masks_8x8() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    masks = [torch.rand(8, 8, generator=g) < p for p in (0.05, 0.3, 0.6, 0.9, 0.97)]
    block = torch.zeros(8, 8, dtype=torch.bool)
    block[:6, :7] = True                       # a large region touching two borders
    ring = torch.ones(8, 8, dtype=torch.bool)
    ring[3:5, 3:5] = False                     # everything but a 2x2 centre: all border pixels
    corner = torch.zeros(8, 8, dtype=torch.bool)
    corner[0, 0] = corner[7, 7] = corner[0, 7] = True
    return torch.stack(masks + [block, ring, corner])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_dense_solve(dtype) -> None:
    remove = masks_8x8()
    images = torch.randn(len(remove), 3, 8, 8, generator=torch.Generator().manual_seed(1))
    out, info = linear_impute(images.to(dtype), remove)
    assert info.converged and info.max_relative_residual <= 1e-6
    assert out.dtype == dtype
    for i in range(len(remove)):
        expected = dense_impute(images[i], remove[i])
        assert torch.allclose(out[i].double(), expected, atol=1e-4, rtol=0), i


def test_noise_free_noisy_impute_equals_linear_and_keeps_kept_pixels() -> None:
    remove = masks_8x8()
    images = torch.randn(len(remove), 3, 8, 8)
    filled, _ = linear_impute(images, remove)
    noisy = noisy_linear_impute(images, remove, noise_std=0.0)
    assert torch.equal(noisy, filled)
    kept = ~remove[:, None].expand_as(images)
    assert torch.equal(filled[kept], images[kept])


def test_imputed_pixel_is_weighted_mean_of_neighbours() -> None:
    images = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    remove = torch.rand(1, 6, 6) < 0.5
    filled, _ = linear_impute(images, remove, tol=1e-12)
    ones = torch.ones(1, 6, 6, dtype=torch.float64)
    mean_of_neighbours = neighbour_sum(filled) / neighbour_sum(ones)
    m = remove[:, None].expand_as(images)
    assert torch.allclose(filled[m], mean_of_neighbours[m], atol=1e-9)


def test_constant_image_is_filled_with_the_constant() -> None:
    images = torch.full((2, 3, 8, 8), 0.7)
    remove = masks_8x8()[:2]
    filled, _ = linear_impute(images, remove)
    assert torch.allclose(filled, images, atol=1e-5)


def test_affine_normalisation_commutes() -> None:
    images = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    remove = masks_8x8()[:3]
    mean = torch.tensor([0.4, 0.5, 0.6], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3], dtype=torch.float64).view(1, 3, 1, 1)
    a, _ = linear_impute((images - mean) / std, remove)
    b, _ = linear_impute(images, remove)
    assert torch.allclose(a, (b - mean) / std, atol=1e-6)


def test_noise_only_on_removed_pixels_with_its_std_and_seeded() -> None:
    images = torch.zeros(4, 3, 32, 32)
    remove = torch.zeros(4, 32, 32, dtype=torch.bool)
    remove[:, 8:24, 8:24] = True
    out = noisy_linear_impute(images, remove, noise_std=[0.01, 0.02, 0.04],
                              generator=torch.Generator().manual_seed(0))
    again = noisy_linear_impute(images, remove, noise_std=[0.01, 0.02, 0.04],
                                generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    kept = ~remove[:, None].expand_as(out)
    assert torch.count_nonzero(out[kept]) == 0
    for ch, std in enumerate((0.01, 0.02, 0.04)):
        values = out[:, ch][remove]
        assert abs(float(values.std()) - std) < 0.1 * std


def test_fully_removed_image_is_zero_and_nothing_removed_is_identity() -> None:
    images = torch.randn(2, 3, 8, 8)
    remove = torch.zeros(2, 8, 8, dtype=torch.bool)
    remove[0] = True
    filled, info = linear_impute(images, remove)
    assert info.converged
    assert torch.count_nonzero(filled[0]) == 0
    assert torch.equal(filled[1], images[1])
    same, info = linear_impute(images, torch.zeros(2, 8, 8, dtype=torch.bool))
    assert torch.equal(same, images) and info.iterations == 0


def test_non_convergence_is_reported() -> None:
    images = torch.randn(2, 3, 16, 16)
    remove = torch.zeros(2, 16, 16, dtype=torch.bool)
    remove[:, 1:15, 1:15] = True
    with pytest.warns(ImputationConvergenceWarning):
        _, info = linear_impute(images, remove, max_iter=2)
    assert not info.converged and info.n_not_converged == 6 and info.iterations == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, info = linear_impute(images, remove)
    assert info.converged


def test_bad_shapes_are_one_line_errors() -> None:
    with pytest.raises(XaikitError, match="remove mask"):
        linear_impute(torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 7, dtype=torch.bool))
    with pytest.raises(XaikitError, match="floating point"):
        linear_impute(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, 8, 8, dtype=torch.bool))
    with pytest.raises(XaikitError, match="channels"):
        noisy_linear_impute(torch.zeros(1, 3, 8, 8), torch.ones(1, 8, 8, dtype=torch.bool), noise_std=[0.1, 0.2])
