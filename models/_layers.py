"""Layers shared by several zoo families. Family-specific blocks live in the family's own file."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
import torch.nn.functional as F


def stage_outputs(x: torch.Tensor, stem: nn.Module, stages) -> list[torch.Tensor]:
    """``stem`` then each of ``stages`` in turn, keeping every stage's output: a family's
    ``forward_intermediates`` (the maps ``edgekit export --features`` picks from), NCHW in order of stride."""
    x = stem(x)
    maps = []
    for stage in stages:
        x = stage(x)
        maps.append(x)
    return maps


def to_pair(v: int | Sequence[int]) -> tuple[int, int]:
    """An int or an (H, W) sequence as an (H, W) tuple of ints."""
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval, so it never reaches an export)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d | nn.Linear, bn: nn.BatchNorm2d | nn.BatchNorm1d) -> nn.Module:
    """Return a new conv/linear computing ``bn(conv(x))`` in eval mode."""
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std if bn.affine else 1.0 / std
    shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * scale
    if isinstance(conv, nn.Conv2d):
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    else:
        fused = nn.Linear(conv.in_features, conv.out_features, bias=True)
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_(bias * scale + shift)
    return fused.to(conv.weight.device)


class ConvNorm(nn.Sequential):
    """Conv2d + BatchNorm2d; ``reparameterize()`` folds the BN into the conv (deploy mode)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, padding: int | None = None,
                 dilation: int = 1, groups: int = 1, bn_weight_init: float = 1.0):
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation if padding is None else padding
        self.add_module("c", nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation, groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_chs))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def reparameterize(self) -> None:
        if isinstance(self.bn, nn.Identity):
            return
        self.c = fuse_conv_bn(self.c, self.bn)
        self.bn = nn.Identity()


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of an NCHW tensor (permute -> LayerNorm -> permute).

    Exported at opset >= 17 as one LayerNormalization node between two Transposes, which keeps
    the reduction in one op (a decomposed LayerNorm overflows in fp16).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
