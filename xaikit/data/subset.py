"""Class-balanced subsets of a ``DataBundle`` (for quick runs: ``--subset N``)."""

from __future__ import annotations

import dataclasses

import torch

from xaikit.errors import DataError
from xaikit.specs import DataBundle


def balanced_indices(labels: torch.Tensor, n: int, num_classes: int, seed: int) -> torch.Tensor:
    """``n`` indices into ``labels``, as equal per class as the class sizes allow.

    Per-class quotas differ by at most one (``ceil``/``floor`` of ``n / num_classes``) unless
    a class has fewer images, whose shortfall is spread over the others. Within a class the
    images are drawn at random with ``seed``. Returned sorted (original order), on the CPU.
    """
    labels = labels.cpu()
    generator = torch.Generator().manual_seed(seed)
    members = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]
    quotas = [0] * num_classes
    remaining = n
    by_size = sorted(range(num_classes), key=lambda c: len(members[c]))  # stable: ties by label
    for position, c in enumerate(by_size):
        classes_left = num_classes - position
        quotas[c] = min(len(members[c]), -(-remaining // classes_left))
        remaining -= quotas[c]
    chosen = [
        members[c][torch.randperm(len(members[c]), generator=generator)[: quotas[c]]]
        for c in range(num_classes)
    ]
    return torch.cat(chosen).sort().values


def balanced_subset(bundle: DataBundle, n: int, seed: int = 0) -> DataBundle:
    """A class-balanced subset: ``n`` train images and ``max(n // 5, num_classes)`` test ones.

    The test split is cut the same way (never beyond its size). ``mean``/``std`` stay those
    of the full train split; ``source`` gets `` (subset N)``.

    Raises:
        DataError: ``n`` is smaller than the number of classes or larger than the train split.
    """
    num_classes = len(bundle.classes)
    n_train = len(bundle.train_labels)
    if n < num_classes or n > n_train:
        raise DataError(
            f"subset size {n} must be between the number of classes ({num_classes}) "
            f"and the number of train images ({n_train:,})"
        )
    n_test = min(max(n // 5, num_classes), len(bundle.test_labels))
    train_idx = balanced_indices(bundle.train_labels, n, num_classes, seed)
    test_idx = balanced_indices(bundle.test_labels, n_test, num_classes, seed + 1)
    train_idx = train_idx.to(bundle.train_labels.device)
    test_idx = test_idx.to(bundle.test_labels.device)
    return dataclasses.replace(
        bundle,
        train_images=bundle.train_images[train_idx],
        train_labels=bundle.train_labels[train_idx],
        test_images=bundle.test_images[test_idx],
        test_labels=bundle.test_labels[test_idx],
        source=f"{bundle.source} (subset {n})",
    )
