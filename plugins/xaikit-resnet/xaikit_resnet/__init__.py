"""xaikit-resnet: the ``custom-resnet`` (David Page's DAWNBench ResNet) and ``resnet18`` models."""

from xaikit_resnet.custom_resnet import CUSTOM_RESNET_RECIPE, CustomResNet, custom_resnet
from xaikit_resnet.resnet18 import RESNET18_RECIPE, BasicBlock, ResNet18, resnet18

__all__ = [
    "CUSTOM_RESNET_RECIPE",
    "RESNET18_RECIPE",
    "BasicBlock",
    "CustomResNet",
    "ResNet18",
    "custom_resnet",
    "resnet18",
]
