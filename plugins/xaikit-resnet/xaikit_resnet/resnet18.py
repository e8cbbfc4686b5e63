"""``resnet18``: the CIFAR variant of ResNet-18.

Reference: Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun, "Deep Residual Learning for
Image Recognition", CVPR 2016 (arXiv:1512.03385), in the CIFAR layout popularised by
kuangliu/pytorch-cifar (``models/resnet.py``): the ImageNet stem (7x7 stride-2 conv and
max-pool) is replaced by one 3x3 stride-1 conv, so a 32x32 image keeps full resolution
through stage 1 and reaches 4x4 at stage 4.

Layout (convs without bias, BN after each conv)::

    stem    conv3x3(3->64) - BN - ReLU                         [B,  64, 32, 32]
    layer1  2 x BasicBlock(64),  stride 1                      [B,  64, 32, 32]
    layer2  2 x BasicBlock(128), stride 2 in the first block   [B, 128, 16, 16]
    layer3  2 x BasicBlock(256), stride 2                      [B, 256,  8,  8]
    layer4  2 x BasicBlock(512), stride 2                      [B, 512,  4,  4]
    pool    adaptive average pool to 1x1, flatten
    fc      Linear(512->10)

    BasicBlock(x) = ReLU( BN(conv3x3(ReLU(BN(conv3x3_s(x))))) + shortcut(x) )
    shortcut = identity, or conv1x1 stride s + BN where the shape changes (option B).

Parameters at ``width=1``, 10 classes: exactly **11,173,962** (convs 11,159,232, BN affine
9,600, classifier 5,130), the count kuangliu/pytorch-cifar's ResNet18 has.

Training recipe (``RESNET18_RECIPE``): from Lightning's "PyTorch Lightning CIFAR10 ~94%
Baseline Tutorial" (Lightning-AI, ``cifar10-baseline`` notebook), which trains this network
for 30 epochs with SGD momentum 0.9, weight decay 5e-4 (mean loss) and ``OneCycleLR`` with
``max_lr = 0.1`` at batch 256 (default ``pct_start = 0.3``), random crop (padding 4) and
flip, reaching about 93-94%. We run batch 512 and scale the peak linearly to
``max_lr = 0.2`` (Goyal et al. 2017), use Nesterov momentum, and add the two regularisers
of Page's recipe in milder form: label smoothing 0.1 and 8x8 cutout (DeVries and Taylor
2017 used 16x16 for 200-epoch runs; 30 epochs need less).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from xaikit import Recipe
from xaikit_resnet._width import check_model_args, scaled_channels

RESNET18_RECIPE = Recipe(
    epochs=30,
    batch_size=512,
    optimizer="sgd",
    max_lr=0.2,
    pct_start=0.3,
    weight_decay=5e-4,
    momentum=0.9,
    nesterov=True,
    label_smoothing=0.1,
    augment=("crop", "flip", "cutout"),
    crop_padding=4,
    cutout=8,
)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN pairs with a residual connection (He et al. 2016, Fig. 2).

    ``out = ReLU(bn2(conv2(ReLU(bn1(conv1(x))))) + shortcut(x))``; ``shortcut`` is the
    identity unless ``stride != 1`` or the channel count changes, then ``conv1x1 + BN``.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        stride: Stride of ``conv1`` and of the projection shortcut.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                    bn=nn.BatchNorm2d(out_channels),
                )
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


def _stage(in_channels: int, out_channels: int, stride: int, blocks: int = 2) -> nn.Sequential:
    """``blocks`` BasicBlocks; only the first changes stride and width."""
    layers = [BasicBlock(in_channels, out_channels, stride)]
    layers += [BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet18(nn.Module):
    """CIFAR ResNet-18; see the module docstring for layout and recipe.

    Args:
        num_classes: Outputs of the classifier.
        width: Channel multiplier (64/128/256/512 times ``width``); only ``1.0`` has the
            published 11,173,962 parameters, narrower ones are for tests and smoke runs.
    """

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        check_model_args(num_classes, width)
        c64, c128, c256, c512 = (scaled_channels(c, width) for c in (64, 128, 256, 512))
        self.conv1 = nn.Conv2d(3, c64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c64)
        self.relu = nn.ReLU()
        self.layer1 = _stage(c64, c64, stride=1)
        self.layer2 = _stage(c64, c128, stride=2)
        self.layer3 = _stage(c128, c256, stride=2)
        self.layer4 = _stage(c256, c512, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.pool(x)))


def resnet18(num_classes: int = 10, width: float = 1.0) -> ResNet18:
    """Build the CIFAR ``resnet18`` (11,173,962 parameters at ``width=1``, 10 classes)."""
    return ResNet18(num_classes=num_classes, width=width)
