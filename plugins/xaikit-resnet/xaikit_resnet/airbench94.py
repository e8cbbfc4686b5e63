"""``airbench94``: Keller Jordan's 94%-in-seconds CIFAR-10 network and recipe.

Reference: Keller Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", arXiv 2404.00498
(2024), the ``airbench94`` recipe: 94.01% mean test accuracy in 9.9 epochs on the original
CIFAR-10 pixels. Written from the paper; every choice below is the paper's unless marked.

Architecture (``padding="same"`` 3x3 convolutions without bias; BatchNorm with a frozen scale of
1 and a trained shift; GELU)::

    whiten  conv(3->24, 2x2, no padding, bias), frozen weights        [B,  24, 31, 31]
            GELU
    block1  conv(24->64)  - maxpool2 - BN - GELU - conv(64->64)  - BN - GELU    [B,  64, 15, 15]
    block2  conv(64->256) - maxpool2 - BN - GELU - conv(256->256) - BN - GELU   [B, 256,  7,  7]
    block3  conv(256->256) - maxpool2 - BN - GELU - conv(256->256) - BN - GELU  [B, 256,  3,  3]
    pool    maxpool3                                                  [B, 256]
    head    Linear(256->10, no bias), logits * 1/9

* **Patch whitening** (the first layer): its 24 filters are the 12 eigenvectors of the
  covariance of the 2x2x3 patches of 5,000 (normalised) training images spread evenly over the
  training set (the paper's first 5,000 of CIFAR-10's shuffled order), each divided by
  ``sqrt(eigenvalue + 5e-4)``, and their negatives. The weights are set from the data before
  the first step (:func:`init_from_data`, the trainer's ``ModelSpec.init_from_data`` hook)
  and never trained; the bias is trained for the first 3 epochs, then frozen
  (:func:`on_epoch_start`).
* **Identity initialisation**: the first ``c_in`` filters of every 3x3 convolution are Dirac
  deltas (``nn.init.dirac_``) on top of PyTorch's default initialisation of the rest.
* BatchNorm momentum 0.6 in the paper's convention (PyTorch's ``momentum = 0.4``), ``eps =
  1e-12``.

Recipe (``AIRBENCH94_RECIPE``, converted to the per-batch *mean* loss the trainer uses): batch
1024; SGD with Nesterov momentum 0.85; label smoothing 0.2; the paper's ``lr = 11.5`` per 1,024
summed examples with the momentum normalisation ``1024 (1 + 1 / (1 - 0.85))`` is ``1.5`` on
the mean loss, and its decoupled ``wd = 0.0153 x 1024 / 7850.7 = 0.0019958`` per step becomes
PyTorch's coupled ``weight_decay = 0.0019958 / 1.5 = 0.0013305``; BatchNorm biases train at 64x
the learning rate with the decay per step unchanged (``norm_lr_scale = 64``); a triangular
schedule rising linearly from 0.2x to 1x the peak over the first 23% of the steps, then falling
linearly to 0.07x; Lookahead every 5 steps with ``alpha = 0.95^5 (step / steps)^3``, the final
weights being the slow ones; random translation by up to 2 pixels (reflect padding) and
alternating flip; multi-crop test-time augmentation (the image and its mirror, and both shifted
by one pixel up-left and down-right).

Differences from the paper, each small: 10 epochs instead of 9.9 (the trainer counts whole
epochs); 49 batches of ~1,020 images an epoch (the trainer splits every image into nearly equal
batches) instead of 48 of 1,024 with the rest dropped; the test-time views' softmax
probabilities are averaged (xaikit's TTA) rather than their logits; float32 (or bfloat16
autocast) instead of float16.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xaikit import Recipe
from xaikit.data import normalize
from xaikit.specs import DataBundle

WHITEN_PATCH = 2
WHITEN_EPS = 5e-4
WHITEN_IMAGES = 5000
WHITEN_BIAS_EPOCHS = 3
WIDTHS = (64, 256, 256)
LOGIT_SCALE = 1.0 / 9.0

AIRBENCH94_RECIPE = Recipe(
    epochs=10,
    batch_size=1024,
    optimizer="sgd",
    max_lr=1.5,
    momentum=0.85,
    nesterov=True,
    weight_decay=0.0013305,
    label_smoothing=0.2,
    schedule="triangular",
    pct_start=0.23,
    div_factor=5.0,  # starts at 0.2 x max_lr
    final_div_factor=0.2 / 0.07,  # ends at 0.07 x max_lr
    norm_lr_scale=64.0,
    lookahead_every=5,
    lookahead_alpha=0.95**5,
    augment=("crop", "altflip"),
    crop_padding=2,
    cutout=0,
    tta_shift=1,
)


class _Conv(nn.Conv2d):
    """3x3, ``same`` padding, no bias; the first ``c_in`` filters start as identities."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.dirac_(self.weight.data[: self.weight.shape[1]])


def _norm(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=1 - 0.6)
    bn.weight.requires_grad_(False)  # a fixed scale of 1; only the shift trains
    return bn


class ConvGroup(nn.Module):
    """conv - maxpool2 - BN - GELU - conv - BN - GELU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = _Conv(c_in, c_out)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _norm(c_out)
        self.conv2 = _Conv(c_out, c_out)
        self.norm2 = _norm(c_out)
        self.activ = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class Airbench94(nn.Module):
    """The airbench94 network (module docstring); ``block3`` is the CAM layer (3x3)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        width = 2 * in_channels * WHITEN_PATCH**2
        self.whiten = nn.Conv2d(in_channels, width, WHITEN_PATCH, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.activ = nn.GELU()
        self.block1 = ConvGroup(width, WIDTHS[0])
        self.block2 = ConvGroup(WIDTHS[0], WIDTHS[1])
        self.block3 = ConvGroup(WIDTHS[1], WIDTHS[2])
        self.pool = nn.MaxPool2d(3)
        self.head = nn.Linear(WIDTHS[2], num_classes, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.block3(self.block2(self.block1(self.activ(self.whiten(x)))))
        return self.head(self.pool(x).flatten(1)) * LOGIT_SCALE


def airbench94(num_classes: int = 10) -> Airbench94:
    """The airbench94 network for ``num_classes`` classes (3-channel 32x32 inputs)."""
    return Airbench94(num_classes)


def whitening_weights(images: Tensor, patch: int = WHITEN_PATCH, eps: float = WHITEN_EPS) -> Tensor:
    """The patch-whitening filters ``[2 C p^2, C, p, p]`` of normalised ``images [N, C, H, W]``.

    ``Sigma = P^T P / n`` over every ``p x p`` patch ``P`` (flattened, uncentred, as the paper);
    ``Sigma = V diag(lambda) V^T``; the filters are ``v_i / sqrt(lambda_i + eps)`` in order of
    decreasing eigenvalue, followed by their negatives.
    """
    c = images.shape[1]
    patches = images.float().unfold(2, patch, 1).unfold(3, patch, 1)  # [N, C, H', W', p, p]
    flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * patch * patch).double()
    covariance = flat.T @ flat / flat.shape[0]
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None])
    filters = filters.reshape(-1, c, patch, patch)
    return torch.cat([filters, -filters]).float()


def whitening_sample(num_images: int, size: int = WHITEN_IMAGES) -> Tensor:
    """The indices of the ``size`` training images the whitening is computed from: evenly spaced
    over the whole training set. The paper takes the first 5,000 of CIFAR-10's shuffled order;
    an ImageFolder bundle is sorted by class, where the first 5,000 would all be airplanes."""
    return torch.linspace(0, num_images - 1, min(size, num_images)).round().long()


def init_from_data(model: nn.Module, data: DataBundle) -> None:
    """Set the whitening layer from 5,000 training images of ``data`` spread over the whole set
    (:func:`whitening_sample`), normalised."""
    if not isinstance(model, Airbench94):
        raise TypeError(f"init_from_data expects an Airbench94, got {type(model).__name__}")
    sample = whitening_sample(data.train_images.shape[0])
    images = normalize(data.train_images[sample], data.mean, data.std)
    with torch.no_grad():
        weights = whitening_weights(images.to(model.whiten.weight.device))
        model.whiten.weight.copy_(weights.to(model.whiten.weight.dtype))


def on_epoch_start(model: nn.Module, epoch: int) -> None:
    """Train the whitening bias in epochs 1-3 only (the paper's ``whiten_bias_epochs = 3``)."""
    if isinstance(model, Airbench94):
        model.whiten.bias.requires_grad_(epoch <= WHITEN_BIAS_EPOCHS)
