"""Segmentation heads shared by several zoo families.

:class:`FPNHead` is a light Semantic-FPN decoder (Kirillov et al., "Panoptic Feature Pyramid
Networks", https://arxiv.org/abs/1901.02446, simplified): 1x1 lateral convs bring every pyramid
level to ``channels``, a top-down path adds each coarser level upsampled into the next finer one,
a 3x3 conv smooths every level, all levels are upsampled to the finest stride, concatenated, fused
by a 1x1 conv and classified. Every conv is Conv + BatchNorm (+ ReLU), so ``reparameterize()``
(via :class:`edgekit.models._layers.ConvNorm`) leaves plain convs in deploy mode.

Upsampling uses ``F.interpolate(mode="bilinear", align_corners=False)`` with scale factors fixed
at construction from the level strides (not read from tensor shapes), so the export has constant
Resize scales and no Shape arithmetic.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from edgekit.models._layers import ConvNorm

__all__ = ["ConvNormAct", "FPNHead"]


class ConvNormAct(nn.Module):
    """Conv2d + BatchNorm2d + ReLU; the BN folds into the conv on ``reparameterize_model``."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1):
        super().__init__()
        self.conv = ConvNorm(in_chs, out_chs, kernel_size)
        self.act = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def _upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    if factor == 1:  # a construction-time constant, not a tensor shape
        return x
    return F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=False)


class FPNHead(nn.Module):
    """Light FPN decoder.

    in_chs: channels of the input levels, finest first.
    in_strides: their strides w.r.t. the image (e.g. (4, 8, 16, 32)); each must be a multiple of
        the previous one. The input of level i must be exactly ``in_strides[i] / in_strides[0]``
        times smaller than level 0 (true for inputs that are multiples of the largest stride).

    forward: list of (B, in_chs[i], H / s_i, W / s_i) -> (B, num_classes, H / s_0, W / s_0) logits.
    """

    def __init__(self, in_chs: Sequence[int], num_classes: int, channels: int = 128,
                 in_strides: Sequence[int] = (4, 8, 16, 32), drop_rate: float = 0.1):
        super().__init__()
        if len(in_chs) != len(in_strides):
            raise ValueError(f"{len(in_chs)} input levels but {len(in_strides)} strides")
        if any(b % a for a, b in zip(in_strides, in_strides[1:])):
            raise ValueError(f"strides {tuple(in_strides)} must each divide the next")
        self.in_strides = tuple(in_strides)
        self.num_classes = num_classes
        self.lateral = nn.ModuleList(ConvNormAct(c, channels, 1) for c in in_chs)
        self.smooth = nn.ModuleList(ConvNormAct(channels, channels, 3) for _ in in_chs)
        self.fuse = ConvNormAct(channels * len(in_chs), channels, 1)
        self.dropout = nn.Dropout2d(drop_rate)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        s = self.in_strides
        levels = [lat(f) for lat, f in zip(self.lateral, feats)]
        for i in range(len(levels) - 2, -1, -1):  # top-down: coarse context into finer levels
            levels[i] = levels[i] + _upsample(levels[i + 1], s[i + 1] // s[i])
        outs = [_upsample(sm(p), s[i] // s[0]) for i, (sm, p) in enumerate(zip(self.smooth, levels))]
        x = self.fuse(torch.cat(outs, dim=1))
        return self.classifier(self.dropout(x))
