"""timm VOLO's outlook attention without ``F.fold`` (col2im) at a stride below its kernel size, for CoreML.

coremltools 9 converts ``fold`` only when its stride is at least its kernel size ("Only supports stride >=
kernel_size for col2im (fold)"); VOLO's outlook attention folds 3x3 windows back at stride 1 or 2
(measured here: the compatibility corpus's slimmed VOLO did not convert). Folding is a transposed
convolution whose kernel is one-hot, one input channel per window position::

    fold(x (B, C*k*k, L), (H, W), k, padding p, stride s)
        == conv_transpose2d(x as (B*C, k*k, h, w), eye(k*k) as (k*k, 1, k, k), stride s, padding p)

(input channel ``i*k + j`` adds its values at offset (i, j) of each window), which CoreML converts.
The swap computes outlook attention as timm does with that fold. Numerics: the same sums in another order
(float rounding).
"""
from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.rewrite.swaps import swap_class

NAME = "coreml_fold"
REPLACES = "timm VOLO OutlookAttention"


def apply(model: nn.Module) -> int:
    volo = sys.modules.get("timm.models.volo")
    if volo is None:  # never imported (or timm not installed): the model cannot contain one
        return 0
    return swap_class(model, volo.OutlookAttention, _transposed_fold)


def fold(x: torch.Tensor, output_size: tuple[int, int], kernel_size: int, padding: int, stride: int) -> torch.Tensor:
    """``F.fold(x, output_size, kernel_size, padding=padding, stride=stride)`` as a transposed convolution:
    (B, C*k*k, h*w) -> (B, C, H, W)."""
    b, ckk, _ = x.shape
    k, (height, width) = kernel_size, output_size
    h = (height + 2 * padding - k) // stride + 1
    w = (width + 2 * padding - k) // stride + 1
    one_hot = torch.eye(k * k, dtype=x.dtype, device=x.device).reshape(k * k, 1, k, k)
    extra = (height - ((h - 1) * stride - 2 * padding + k), width - ((w - 1) * stride - 2 * padding + k))
    y = F.conv_transpose2d(x.reshape(b * (ckk // (k * k)), k * k, h, w), one_hot, stride=stride, padding=padding,
                           output_padding=extra)
    return y.reshape(b, ckk // (k * k), height, width)


def _transposed_fold(cls: type) -> type:
    class TransposedFoldOutlookAttention(cls):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, height, width, c = x.shape
            k2, heads = self.kernel_size * self.kernel_size, self.num_heads
            h, w = math.ceil(height / self.stride), math.ceil(width / self.stride)
            v = self.unfold(self.v(x).permute(0, 3, 1, 2))  # (B, C*k*k, h*w)
            v = v.reshape(b, heads, c // heads, k2, h * w).permute(0, 1, 4, 3, 2)  # (B, heads, L, k*k, d)
            a = self.attn(self.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
            a = (a.reshape(b, h * w, heads, k2, k2).permute(0, 2, 1, 3, 4) * self.scale).softmax(dim=-1)
            y = (self.attn_drop(a) @ v).permute(0, 1, 4, 3, 2).reshape(b, c * k2, h * w)
            y = fold(y, (height, width), self.kernel_size, self.padding, self.stride)
            return self.proj_drop(self.proj(y.permute(0, 2, 3, 1)))

    return TransposedFoldOutlookAttention
