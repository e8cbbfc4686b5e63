"""The ULTIMUS network: three conv blocks, global average pooling, four ULTIMUS attention blocks.

Spec (xaikit DESIGN.md, "Models"; the ULTIMUS assignment of The School of AI's EVA course)::

    C(3->16) > C(16->32) > C(32->48) > GAP > 4 x ULTIMUS > FC(48->10)

Each ULTIMUS block maps the 48-d feature vector ``x`` of ONE image to 48 numbers::

    q, k, v = W_q x + b_q,  W_k x + b_k,  W_v x + b_v            (each 48 -> 8)
    S[i, j] = q_i * k_j                                           (8x8 outer product  q k^T)
    AM      = softmax(S / sqrt(8))                                (scale="before", default)
            | softmax(S) / sqrt(8)                                (scale="after")
    z_j     = sum_i v_i * AM[i, j]                                (z = v . AM, a row vector)
    out     = W_o z + b_o                                         (8 -> 48)
    y       = x + out  (residual=True, default)   |   out  (residual=False)

``softmax_dim`` names the axis of ``AM[b, i, j]`` (batch first) that is normalised. The default,
``softmax_dim=1``, normalises over ``i`` so that ``sum_i AM[i, j] = 1`` and each ``z_j`` is a
convex combination (weighted average) of the entries of ``v``; ``softmax_dim=2`` normalises
over ``j`` instead (rows of AM sum to one, ``z`` is then not an average of ``v``).

Attention is per image: nothing mixes the images of a batch. The batched implementation uses
one einsum over ``[B, 8, 8]``; :func:`ultimus_block_reference` is the per-image loop it must
equal.

With 3x3 convolutions with bias and BatchNorm the default model has exactly 26,074 parameters:
convs 480 + 4,704 + 13,968, four ULTIMUS blocks 4 x 1,608, classifier 490.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaikit import XaikitError

SCALES = ("before", "after")
SOFTMAX_DIMS = (1, 2)


class UltimusBlock(nn.Module):
    """One ULTIMUS self-attention block over a single image's feature vector.

    ``AM = softmax(q k^T / sqrt(d))`` (or ``softmax(q k^T) / sqrt(d)``), ``z = v AM``,
    ``y = x + W_o z + b_o`` (see the module docstring for the full formulas).

    Args:
        channels: Width of the input and output vector (48 in the spec).
        attention_dim: Width ``d`` of q, k and v (8 in the spec).
        scale: ``"before"`` scales the logits by ``1/sqrt(d)`` before the softmax, ``"after"``
            scales the softmax output.
        softmax_dim: Axis of ``AM[b, i, j]`` that is normalised: 1 (default, ``z`` is a weighted
            average of ``v``) or 2.
        residual: Add the block's input to its output (parameter-free).
    """

    def __init__(
        self,
        channels: int = 48,
        attention_dim: int = 8,
        scale: str = "before",
        softmax_dim: int = 1,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if scale not in SCALES:
            raise XaikitError(f"ultimus: scale must be one of {SCALES}, got {scale!r}")
        if softmax_dim not in SOFTMAX_DIMS:
            raise XaikitError(f"ultimus: softmax_dim must be one of {SOFTMAX_DIMS}, got {softmax_dim!r}")
        self.key = nn.Linear(channels, attention_dim)
        self.query = nn.Linear(channels, attention_dim)
        self.value = nn.Linear(channels, attention_dim)
        self.out = nn.Linear(attention_dim, channels)
        self.scale = scale
        self.softmax_dim = softmax_dim
        self.residual = residual
        self.inv_sqrt_dim = 1.0 / math.sqrt(attention_dim)

    def attention_map(self, x: Tensor) -> Tensor:
        """The attention matrices ``AM`` of a batch of vectors ``x`` ``[B, C]``, as ``[B, d, d]``."""
        q, k = self.query(x), self.key(x)
        logits = q.unsqueeze(2) * k.unsqueeze(1)  # [B, d, d], logits[b, i, j] = q_i k_j
        if self.scale == "before":
            return F.softmax(logits * self.inv_sqrt_dim, dim=self.softmax_dim)
        return F.softmax(logits, dim=self.softmax_dim) * self.inv_sqrt_dim

    def forward(self, x: Tensor) -> Tensor:
        """Map ``x`` ``[B, C]`` to ``[B, C]``; each row only sees its own image."""
        am = self.attention_map(x)
        z = torch.einsum("bi,bij->bj", self.value(x), am)  # z = v . AM, one batched product
        y = self.out(z)
        return x + y if self.residual else y


def ultimus_block_reference(block: UltimusBlock, x: Tensor) -> Tensor:
    """The ULTIMUS block written the plain way, one image at a time (for tests).

    For each image ``b``: ``AM = softmax(outer(q, k) / sqrt(d))`` over the block's axis,
    ``z = v @ AM``, ``y = x_b + W_o z + b_o``. Uses the block's own weights and options.
    """
    rows = []
    axis = block.softmax_dim - 1  # axis of the unbatched [d, d] matrix
    for xb in x:
        q, k, v = block.query(xb), block.key(xb), block.value(xb)
        s = torch.outer(q, k)
        if block.scale == "before":
            am = torch.softmax(s / math.sqrt(q.numel()), dim=axis)
        else:
            am = torch.softmax(s, dim=axis) / math.sqrt(q.numel())
        y = block.out(v @ am)
        rows.append(xb + y if block.residual else y)
    return torch.stack(rows)


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (padding 1, with bias) > BatchNorm > ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Ultimus(nn.Module):
    """The ULTIMUS classifier (26,074 parameters by default).

    ``conv1 > pool1 > conv2 > pool2 > conv3 > pool3 > GAP > ultimus.0..3 > fc``, where
    ``convN`` is a 3x3 conv (padding 1) > BatchNorm > ReLU and ``poolN`` is a 2x2 max-pool
    (or identity, see ``pool_after``). ``conv3`` outputs the last conv feature map after its
    ReLU, ``[B, 48, 8, 8]`` for a 32x32 input with the default pooling: the CAM target layer.

    Args:
        num_classes: Number of output classes.
        scale: ULTIMUS logit scaling, ``"before"`` (default) or ``"after"`` the softmax.
        softmax_dim: Normalised axis of ``AM[b, i, j]``; 1 (default) makes ``z = v . AM`` a
            weighted average of ``v``.
        residual: Residual connection around each ULTIMUS block (default ``True``).
        pool_after: Which conv blocks are followed by a 2x2 max-pool (default all three).
        in_channels: Channels of the input image.
    """

    def __init__(
        self,
        num_classes: int = 10,
        scale: str = "before",
        softmax_dim: int = 1,
        residual: bool = True,
        pool_after: tuple[bool, bool, bool] = (True, True, True),
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(pool_after) != 3:
            raise XaikitError(f"ultimus: pool_after needs 3 flags, got {len(pool_after)}")
        self.conv1 = conv_block(in_channels, 16)
        self.pool1 = nn.MaxPool2d(2) if pool_after[0] else nn.Identity()
        self.conv2 = conv_block(16, 32)
        self.pool2 = nn.MaxPool2d(2) if pool_after[1] else nn.Identity()
        self.conv3 = conv_block(32, 48)
        self.pool3 = nn.MaxPool2d(2) if pool_after[2] else nn.Identity()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.ultimus = nn.Sequential(
            *(UltimusBlock(48, 8, scale, softmax_dim, residual) for _ in range(4))
        )
        self.fc = nn.Linear(48, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The 48-d pooled feature vector ``[B, 48]`` of images ``[B, C, H, W]``."""
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.pool3(self.conv3(x))
        return self.gap(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, num_classes]`` of images ``[B, C, H, W]``."""
        return self.fc(self.ultimus(self.features(x)))


def build_ultimus(
    num_classes: int = 10,
    scale: str = "before",
    softmax_dim: int = 1,
    residual: bool = True,
    pool_after: tuple[bool, bool, bool] = (True, True, True),
    in_channels: int = 3,
) -> Ultimus:
    """Factory for the registry, with :class:`Ultimus`'s options spelt out so that
    ``xaikit plugins list`` shows them and ``--model-arg`` is checked against them."""
    return Ultimus(num_classes=num_classes, scale=scale, softmax_dim=softmax_dim,
                   residual=residual, pool_after=pool_after, in_channels=in_channels)
