"""Tiny attention modules in the forms the attention rules match (zoo, timm, Hugging Face), for rule tests."""
from __future__ import annotations

import torch
from torch import nn

from edgekit.models.swin import WindowAttention, shift_window_mask


def zoo_window_attention(shifted: bool = True) -> nn.Module:
    """edgekit's Swin WindowAttention on a 6x6 map of 3x3 windows: input (B*4, 9, 16), 2 heads, deploy mode."""
    torch.manual_seed(0)
    mask = shift_window_mask((6, 6), (3, 3), (1, 1)) if shifted else None
    attn = WindowAttention(16, 2, (3, 3), shift_mask=mask)
    with torch.no_grad():
        attn.relative_position_bias_table.normal_(0, 1.0)  # a bias that matters
    attn.reparameterize()
    return attn.eval()


class PlainAttention(nn.Module):
    """Self-attention without a bias, (B, N, C) -> (B, N, C), with the logit scale after q @ k^T (HF style)."""

    def __init__(self, dim: int = 16, heads: int = 2):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = (t.reshape(b, n, self.heads, c // self.heads).transpose(1, 2) for t in self.qkv(x).split(c, -1))
        a = ((q @ k.transpose(-2, -1)) * self.scale).softmax(-1)
        return (a @ v).transpose(1, 2).reshape(b, n, c)


class ReducedAttention(nn.Module):
    """SegFormer-style: queries from x, keys/values from a 2x-pooled x (separate projections)."""

    def __init__(self, dim: int = 16, heads: int = 2):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.q, self.kv = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim)

    def forward(self, x):
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        r = x.reshape(b, n // 2, 2, c).mean(2)
        k, v = (t.reshape(b, n // 2, self.heads, -1).transpose(1, 2) for t in self.kv(r).split(c, -1))
        return (((q * self.scale) @ k.transpose(-2, -1)).softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)


class TimmLinearAttention(nn.Module):
    """timm's LiteMLA core (padded-ones normaliser) on given q, k, v (B, h, N, d)."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, q, k, v):
        q, k = torch.relu(q), torch.relu(k)
        v = nn.functional.pad(v, (0, 1), mode="constant", value=1.0)  # a column of ones: (B, h, N, d + 1)
        out = q @ (k.transpose(-1, -2) @ v)
        return out[..., :-1] / (out[..., -1:] + self.eps)
