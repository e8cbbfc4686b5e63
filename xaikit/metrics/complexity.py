"""Complexity of attribution maps: sparseness (Gini index) and entropy, per image.

* :func:`sparseness` -- Chalasani, Chen, Chowdhury, Wu and Jha, "Concise Explanations of Neural
  Networks using Adversarial Training", ICML 2020: the Gini index of ``|map|``, as Quantus's
  ``Sparseness`` computes it. With ``a = |map| + 1e-7`` flattened and sorted ascending
  (``a_(1) <= ... <= a_(n)``)::

      G = sum_k (2k - n - 1) a_(k) / (n sum_k a_(k))

  0 for a uniform map, ``(n - 1) / n`` for a map with one non-zero pixel. Higher = sparser
  (more concise), which Quantus counts as better.
* :func:`complexity` -- Bhatt, Weller and Moura, "Evaluating and Aggregating Feature-based
  Model Explanations", IJCAI 2020: the entropy (nats) of the fractional contribution
  ``p_i = |map_i| / sum_j |map_j|``::

      H = -sum_i p_i ln p_i

  0 for one non-zero pixel, ``ln n`` for a uniform map; lower = simpler. An all-zero map has
  no distribution: NaN.
* :func:`histogram_entropy` -- the discrete entropy of a map's value histogram (``n_bins``
  equal bins between its min and max), Quantus's ``discrete_entropy``, used by eMPRT.

All are batched over ``[B, H, W]`` (or ``[B, ...]``) maps and return CPU tensors ``[B]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from xaikit.errors import XaikitError

GINI_EPS = 1e-7  # added to |map| as Quantus does, so an all-zero map has Gini 0, not 0/0


def _flat(maps: Tensor) -> Tensor:
    if maps.ndim < 2:
        raise XaikitError(f"expected maps [B, H, W], got shape {tuple(maps.shape)}")
    return maps.detach().flatten(1).double()


def sparseness(maps: Tensor) -> Tensor:
    """Gini index of ``|map|`` per image (Chalasani et al. 2020, as in Quantus): ``[B]``, higher = sparser."""
    a = torch.sort(_flat(maps).abs() + GINI_EPS, dim=1).values
    n = a.shape[1]
    k = torch.arange(1, n + 1, dtype=a.dtype, device=a.device)
    gini = ((2 * k - n - 1) * a).sum(dim=1) / (n * a.sum(dim=1))
    return gini.float().cpu()


def complexity(maps: Tensor) -> Tensor:
    """Entropy (nats) of ``|map| / sum |map|`` per image (Bhatt et al. 2020): ``[B]``, lower = simpler."""
    a = _flat(maps).abs()
    total = a.sum(dim=1, keepdim=True)
    p = a / total
    terms = torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))
    h = -terms.sum(dim=1)
    return torch.where(total[:, 0] > 0, h, torch.full_like(h, float("nan"))).float().cpu()


def histogram_entropy(maps: Tensor, n_bins: int = 100) -> Tensor:
    """Entropy (nats) of each map's histogram of ``n_bins`` equal bins over ``[min, max]``: ``[B]``.

    As ``scipy.stats.entropy(np.histogram(map, bins=n_bins)[0])`` (Quantus's
    ``discrete_entropy``); the maximum value falls in the last bin, a constant map has 0.
    """
    if n_bins < 1:
        raise XaikitError(f"n_bins must be >= 1, got {n_bins}")
    a = _flat(maps)
    lo = a.min(dim=1, keepdim=True).values
    hi = a.max(dim=1, keepdim=True).values
    width = (hi - lo).clamp_min(torch.finfo(a.dtype).tiny)
    idx = ((a - lo) / width * n_bins).floor().long().clamp_(0, n_bins - 1)
    counts = torch.zeros(a.shape[0], n_bins, dtype=a.dtype, device=a.device)
    counts.scatter_add_(1, idx, torch.ones_like(a))
    p = counts / a.shape[1]
    terms = torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))
    return (-terms.sum(dim=1)).float().cpu()
