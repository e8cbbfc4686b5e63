"""First principal component of a feature map, linear (Eigen-CAM) or with a kernel (KPCA-CAM).

Each image's map ``M`` ``[K, h, w]`` is read as ``n = h w`` points (the locations) in ``R^K``
(the channels), centred per channel. The map is each location's coordinate on the first
principal component, ``[h, w]``. Images are decomposed one by one (a batched decomposition of
``B`` independent matrices), in float64.

**Sign.** A principal direction is only defined up to its sign, and SVD/eigen solvers return
either (pytorch-grad-cam's Eigen-CAM inherits whichever LAPACK gives). Here it is fixed: the
projection is oriented so that it correlates positively with the channel sum ``sum_k M^k``
("high where the features are high"); where that correlation is zero, so that its largest
absolute value is positive (the convention of Seg-Eigen-CAM and of scikit-learn's ``svd_flip``).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Kernels of :func:`kernel_first_component`, with scikit-learn's ``pairwise_kernels`` formulas.
KERNELS = ("sigmoid", "rbf", "poly", "linear", "cosine")


def centred_points(feature_map: Tensor) -> Tensor:
    """``[B, K, h, w]`` -> ``[B, h w, K]`` float64, each channel centred over the locations."""
    points = feature_map.detach().flatten(2).transpose(1, 2).double()
    points = torch.nan_to_num(points)
    return points - points.mean(dim=1, keepdim=True)


def orient(projection: Tensor, feature_map: Tensor) -> Tensor:
    """Flip each image's projection ``[B, n]`` so it correlates positively with the channel sum
    of ``feature_map`` ``[B, K, h, w]`` (ties: so that its largest absolute value is positive)."""
    reference = feature_map.detach().double().sum(dim=1).flatten(1)
    reference = reference - reference.mean(dim=1, keepdim=True)
    agreement = (projection * reference).sum(dim=1)
    extreme = projection.gather(1, projection.abs().argmax(dim=1, keepdim=True))[:, 0]
    # |agreement| <= |projection| |reference| (Cauchy-Schwarz): a tiny cosine is a tie
    tie = agreement.abs() <= 1e-9 * projection.norm(dim=1) * reference.norm(dim=1)
    sign = torch.where(tie, torch.sign(extreme), torch.sign(agreement))
    return projection * torch.where(sign == 0, torch.ones_like(sign), sign)[:, None]


def first_component(feature_map: Tensor) -> Tensor:
    """Coordinates ``[B, h, w]`` (signed, oriented) of every location on the first principal
    component of the centred points: ``X v_1`` with ``X = U S V^T`` (Eigen-CAM)."""
    batch, _channels, height, width = feature_map.shape
    points = centred_points(feature_map)
    _u, _s, vh = torch.linalg.svd(points, full_matrices=False)
    projection = points @ vh[:, 0, :, None]
    projection = orient(projection[..., 0], feature_map)
    return projection.reshape(batch, height, width).to(feature_map.dtype)


def kernel_matrix(
    points: Tensor, kernel: str, gamma: float | None, degree: int, coef0: float
) -> Tensor:
    """Gram matrices ``[B, n, n]`` of the points ``[B, n, K]`` (scikit-learn's formulas; ``gamma``
    defaults to ``1 / K``)."""
    gamma = 1.0 / points.shape[-1] if gamma is None else gamma
    dot = points @ points.transpose(1, 2)
    if kernel == "linear":
        return dot
    if kernel == "sigmoid":
        return torch.tanh(gamma * dot + coef0)
    if kernel == "poly":
        return (gamma * dot + coef0) ** degree
    if kernel == "rbf":
        squared = points.pow(2).sum(dim=-1)
        distance = (squared[:, :, None] + squared[:, None, :] - 2 * dot).clamp_min(0)
        return torch.exp(-gamma * distance)
    if kernel == "cosine":
        norm = points.norm(dim=-1, keepdim=True)
        unit = points / torch.where(norm > 0, norm, torch.ones_like(norm))
        return unit @ unit.transpose(1, 2)
    raise ValueError(f"unknown kernel {kernel!r}")


def kernel_first_component(
    feature_map: Tensor,
    kernel: str = "sigmoid",
    gamma: float | None = None,
    degree: int = 3,
    coef0: float = 1.0,
) -> Tensor:
    """Coordinates ``[B, h, w]`` (signed, oriented) on the first kernel principal component.

    As scikit-learn's ``KernelPCA(n_components=1).fit_transform``: the Gram matrix ``G`` of the
    centred points is double-centred, ``G_c = G - 1G/n - G1/n + 1G1/n^2``; with ``lambda, v`` its
    largest eigenvalue and unit eigenvector, the coordinates are ``sqrt(lambda) v`` (0 where
    ``lambda <= 0``). With ``kernel="linear"`` this is :func:`first_component`.
    """
    batch, _channels, height, width = feature_map.shape
    points = centred_points(feature_map)
    gram = kernel_matrix(points, kernel, gamma, degree, coef0)
    gram = gram - gram.mean(dim=1, keepdim=True) - gram.mean(dim=2, keepdim=True)
    gram = gram + gram.mean(dim=(1, 2), keepdim=True)
    gram = (gram + gram.transpose(1, 2)) / 2
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    top = eigenvalues[:, -1].clamp_min(0)
    projection = eigenvectors[:, :, -1] * top.sqrt()[:, None]
    projection = orient(projection, feature_map)
    return projection.reshape(batch, height, width).to(feature_map.dtype)
