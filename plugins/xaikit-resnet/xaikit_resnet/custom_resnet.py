"""``custom-resnet``: David Page's one-cycle CIFAR-10 ResNet ("How to train your ResNet").

Reference: David Page, "How to train your ResNet", myrtle.ai blog series, 2018 (parts 1-8),
the network behind myrtle.ai's DAWNBench CIFAR-10 entry (94% test accuracy in 24 epochs).

Architecture (all convolutions 3x3, stride 1, padding 1, no bias; BN follows every conv)::

    prep    conv(3->64)    - BN - ReLU                                  [B,  64, 32, 32]
    layer1  conv(64->128)  - BN - ReLU - maxpool2 + residual(128)       [B, 128, 16, 16]
    layer2  conv(128->256) - BN - ReLU - maxpool2                       [B, 256,  8,  8]
    layer3  conv(256->512) - BN - ReLU - maxpool2 + residual(512)       [B, 512,  4,  4]
    pool    global max-pool (Page: MaxPool2d(4) on the 4x4 map)         [B, 512]
    fc      Linear(512->10, no bias)
    scale   logits * 0.125

    residual(c)(x) = x + (conv-BN-ReLU -> conv-BN-ReLU)(x)   (no ReLU after the sum)

Parameters at ``width=1``, 10 classes: exactly **6,573,120** (convs 6,563,520, BN
affine 4,480, classifier 5,120). BN running statistics are buffers, not counted.

Training recipe (``CUSTOM_RESNET_RECIPE``), Page's: 24 epochs, batch 512, SGD with Nesterov
momentum 0.9, learning rate rising linearly from 0 to its peak at epoch 5 and falling
linearly to 0 at epoch 24 (``pct_start = 5/24``), augmentation random crop (padding 4,
reflect), horizontal flip and 8x8 cutout, label smoothing 0.2 (added in part 7).

Converting Page's learning rate and weight decay to a mean loss. Page sums the loss over
the batch, ``L_sum = sum_i l_i = B * L_mean`` with ``B = 512``, and gives PyTorch's SGD
``lr = lr_page / B`` with ``lr_page`` peaking at 0.4, and ``weight_decay = 5e-4 * B``.
PyTorch's SGD adds the decay to the gradient (coupled L2), ``g = grad(L) + wd * w``, and
momentum and Nesterov are linear in ``g``, so one step moves the weights by ``lr * g``
accumulated through the same linear momentum filter. With Page's numbers::

    lr * g = (0.4 / B) * (grad(L_sum) + 5e-4 * B * w)
           = (0.4 / B) * (B * grad(L_mean) + 5e-4 * B * w)
           = 0.4 * (grad(L_mean) + 5e-4 * w)

which is exactly PyTorch SGD on the per-batch mean loss with ``max_lr = 0.4`` and
``weight_decay = 5e-4``. The equivalence is exact at every step of the schedule (the batch
factor cancels), provided decay is applied to every parameter, BN weights and biases
included, as Page did.

Left out (to keep the model a plain ``nn.Module`` any trainer can drive): Page's BN-weight
initialisation scale and, in later parts, frozen BN scales with a fixed, larger learning
rate for BN biases; CELU instead of ReLU, ghost batch norm, input patch whitening,
exponential moving average of weights and test-time flip augmentation (part 7). The
schedule is whatever one-cycle shape the trainer implements: PyTorch's ``OneCycleLR``
starts at ``max_lr / div_factor`` rather than 0, and may cycle momentum where Page held
it at 0.9.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from xaikit import Recipe
from xaikit_resnet._width import check_model_args, scaled_channels

CUSTOM_RESNET_RECIPE = Recipe(
    epochs=24,
    batch_size=512,
    optimizer="sgd",
    max_lr=0.4,
    pct_start=5 / 24,
    weight_decay=5e-4,
    momentum=0.9,
    nesterov=True,
    label_smoothing=0.2,
    augment=("crop", "flip", "cutout"),
    crop_padding=4,
    cutout=8,
)

LOGIT_SCALE = 0.125


class ConvBNReLU(nn.Sequential):
    """``conv3x3(no bias) -> BatchNorm2d -> ReLU`` with children ``conv``, ``bn``, ``relu``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            OrderedDict(
                conv=nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                bn=nn.BatchNorm2d(out_channels),
                relu=nn.ReLU(),
            )
        )


class Residual(nn.Module):
    """``x + ConvBNReLU(ConvBNReLU(x))`` at a constant channel count (Page's ``res1``/``res2``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            OrderedDict(
                res1=ConvBNReLU(channels, channels),
                res2=ConvBNReLU(channels, channels),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _page_layer(in_channels: int, out_channels: int, residual: bool) -> nn.Sequential:
    """``conv-BN-ReLU -> maxpool2`` and, if ``residual``, a ``Residual`` at the output width."""
    parts: OrderedDict[str, nn.Module] = OrderedDict(
        conv_bn_relu=ConvBNReLU(in_channels, out_channels),
        pool=nn.MaxPool2d(2),
    )
    if residual:
        parts["residual"] = Residual(out_channels)
    return nn.Sequential(parts)


class Scale(nn.Module):
    """Multiply by a fixed constant (no parameters)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class CustomResNet(nn.Module):
    """Page's 9-layer DAWNBench ResNet; see the module docstring for layout and recipe.

    Args:
        num_classes: Outputs of the classifier.
        width: Channel multiplier (64/128/256/512 times ``width``); only ``1.0`` is Page's
            network with 6,573,120 parameters, narrower ones are for tests and smoke runs.
    """

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        check_model_args(num_classes, width)
        c64, c128, c256, c512 = (scaled_channels(c, width) for c in (64, 128, 256, 512))
        self.prep = ConvBNReLU(3, c64)
        self.layer1 = _page_layer(c64, c128, residual=True)
        self.layer2 = _page_layer(c128, c256, residual=False)
        self.layer3 = _page_layer(c256, c512, residual=True)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c512, num_classes, bias=False)
        self.scale = Scale(LOGIT_SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prep(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.scale(self.fc(self.flatten(self.pool(x))))


def custom_resnet(num_classes: int = 10, width: float = 1.0) -> CustomResNet:
    """Build ``custom-resnet`` (6,573,120 parameters at ``width=1``, 10 classes)."""
    return CustomResNet(num_classes=num_classes, width=width)
