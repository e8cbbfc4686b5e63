"""A generated 10-class data set for tests and smoke runs (``DatasetSpec`` ``"synthetic"``).

Each class is one coloured shape (a ``red square``, a ``green disk``...) of random size and
position on a grey, noisy background; colour, brightness and pixel noise are jittered. Both
colour and shape tell the classes apart, so a tiny CNN separates them within an epoch or
two, and the evidence is local, so attribution maps have something to find. Generation is
vectorised (one pass per class, no per-image loop) and deterministic: the same call always
gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from xaikit.data.bundle import make_bundle
from xaikit.errors import DataError
from xaikit.specs import DataBundle

IMAGE_SIZE = 32
TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 50
SEED = 0

ShapeMask = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _square(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return torch.maximum(dx.abs(), dy.abs()) <= 0.8 * r


def _disk(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return dx * dx + dy * dy <= r * r


def _triangle(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return (dy <= 0.8 * r) & (dx.abs() <= 0.55 * (dy + r))  # apex up


def _plus(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    arm = 0.3 * r
    return ((dx.abs() <= arm) & (dy.abs() <= r)) | ((dy.abs() <= arm) & (dx.abs() <= r))


def _ring(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    d2 = dx * dx + dy * dy
    return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)


def _diamond(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return dx.abs() + dy.abs() <= r


def _horizontal_stripes(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return (torch.maximum(dx.abs(), dy.abs()) <= r) & (torch.floor(dy / 2) % 2 == 0)


def _vertical_stripes(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return (torch.maximum(dx.abs(), dy.abs()) <= r) & (torch.floor(dx / 2) % 2 == 0)


def _x_cross(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return ((dx.abs() - dy.abs()).abs() <= 1.2) & (torch.maximum(dx.abs(), dy.abs()) <= r)


def _frame(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    side = torch.maximum(dx.abs(), dy.abs())
    return (side <= r) & (side >= r - 2.5)


#: (class name, RGB colour on 0..1, shape mask); the order is the label order.
CLASSES: tuple[tuple[str, tuple[float, float, float], ShapeMask], ...] = (
    ("red square", (0.90, 0.10, 0.10), _square),
    ("green disk", (0.10, 0.75, 0.10), _disk),
    ("blue triangle", (0.15, 0.25, 0.95), _triangle),
    ("yellow plus", (0.95, 0.90, 0.10), _plus),
    ("magenta ring", (0.90, 0.10, 0.90), _ring),
    ("cyan diamond", (0.10, 0.85, 0.90), _diamond),
    ("orange horizontal stripes", (1.00, 0.55, 0.00), _horizontal_stripes),
    ("purple vertical stripes", (0.50, 0.15, 0.75), _vertical_stripes),
    ("white x-cross", (0.97, 0.97, 0.97), _x_cross),
    ("black frame", (0.03, 0.03, 0.03), _frame),
)


def generate_split(per_class: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` images of every class, shuffled: ``(uint8 [N, 3, 32, 32], int64 [N])``."""
    size = IMAGE_SIZE
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    images = []
    for colour, shape in ((c, s) for _, c, s in CLASSES):
        n = per_class
        radius = 5.0 + 3.5 * torch.rand(n, 1, 1, generator=generator)
        centre = 10.0 + 12.0 * torch.rand(n, 2, 1, 1, generator=generator)  # object stays inside
        dx = coords.view(1, 1, size) - centre[:, 0]
        dy = coords.view(1, size, 1) - centre[:, 1]
        mask = shape(dx, dy, radius).unsqueeze(1)  # [n, 1, H, W]
        grey = 0.35 + 0.3 * torch.rand(n, 1, 1, 1, generator=generator)
        tint = 0.05 * torch.randn(n, 3, 1, 1, generator=generator)
        background = grey + tint
        brightness = 0.85 + 0.3 * torch.rand(n, 1, 1, 1, generator=generator)
        jitter = 0.06 * torch.randn(n, 3, 1, 1, generator=generator)
        foreground = torch.tensor(colour).view(1, 3, 1, 1) * brightness + jitter
        noise = 0.06 * torch.randn(n, 3, size, size, generator=generator)
        image = torch.where(mask, foreground, background) + noise
        images.append((image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8))
    all_images = torch.cat(images)
    labels = torch.arange(len(CLASSES)).repeat_interleave(per_class)
    order = torch.randperm(len(labels), generator=generator)
    return all_images[order].contiguous(), labels[order]


def load_synthetic(path: str | None, cache_dir: Path) -> DataBundle:
    """Generate the synthetic data set: 2,000 train and 500 test images, balanced.

    Args:
        path: Must be ``None``: the data is generated, not read.
        cache_dir: Unused (generation takes milliseconds); part of ``DatasetSpec.load``.

    Raises:
        DataError: ``path`` was given.
    """
    if path is not None:
        raise DataError("the synthetic data set is generated and takes no --data path")
    generator = torch.Generator().manual_seed(SEED)
    # ~8 MB of work: one thread is fastest, and far faster on a busy machine, where waiting
    # for a descheduled OpenMP worker made this 25x slower on 2 shared cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_images, train_labels = generate_split(TRAIN_PER_CLASS, generator)
        test_images, test_labels = generate_split(TEST_PER_CLASS, generator)
    finally:
        torch.set_num_threads(threads)
    source = (
        f"synthetic shapes (seed {SEED}, {len(train_labels):,} train / {len(test_labels):,} test)"
    )
    classes = [name for name, _, _ in CLASSES]
    return make_bundle(train_images, train_labels, test_images, test_labels, classes, source)
