"""Tiny models whose exports carry edgekit's plugin nodes (importable as factory sources:
``tests.targets.plugin_models:window_classifier``), and helpers to export them."""
from __future__ import annotations

import torch
from torch import nn

from edgekit.models import ModelCfg
from edgekit.plugins.linear_attention import linear_attention
from edgekit.plugins.window_attention import window_attention


class WindowLinearNet(nn.Module):
    """(1, 3, 32, 32) -> (1, 10): a windowed-attention block (4 windows of 16 tokens, 2 heads) and a
    linear-attention block, each one plugin node in the export."""

    def __init__(self, dim: int = 16, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.stem = nn.Conv2d(3, dim, 4, 4)  # (1, dim, 8, 8)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.bias = nn.Parameter(torch.randn(1, heads, 16, 16) * 0.5)
        self.qkv2 = nn.Linear(dim, 3 * dim)
        self.head = nn.Linear(dim, 10)

    def _split(self, t: torch.Tensor, groups: int) -> list[torch.Tensor]:
        b, n, _ = t.shape  # (B_, N, 3 * dim) -> 3 x (B_, heads, N, d)
        return list(t.reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.stem(x).flatten(2).transpose(1, 2)  # (1, 64, dim)
        c = t.shape[-1]
        w = t.reshape(4, 16, c)  # 4 windows of 16 tokens
        q, k, v = self._split(self.qkv(w), 4)
        w = w + window_attention(q, k, v, self.bias, (c // self.heads) ** -0.5).transpose(1, 2).reshape(4, 16, c)
        t = w.reshape(1, 64, c)
        q, k, v = self._split(self.qkv2(t), 1)
        t = t + linear_attention(q, k, v, 1e-4).transpose(1, 2).reshape(1, 64, c)
        return self.head(t.mean(1))


def window_classifier() -> nn.Module:
    torch.manual_seed(0)
    m = WindowLinearNet()
    m.edgekit_cfg = ModelCfg(family="test", input_size=(3, 32, 32), num_classes=10, labels="", size_divisor=32)
    return m.eval()
