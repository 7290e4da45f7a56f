"""timm MViTv2's decomposed relative positions at rank <= 5 (CoreML allows tensors of rank <= 5).

MViTv2 adds its relative-position terms to the attention scores through a rank-6 view,
(B, heads, q_h, q_w, k_h, k_w), in timm's module-level ``cal_rel_pos_type``; coremltools 9 refuses it
("Core ML only supports tensors with rank <= 5", measured on the compatibility corpus's slimmed MViTv2).
It is MViTv2's only tensor above rank 5. The swap gives both attention classes a ``forward`` that runs
timm's own with that function replaced, for the duration of the call, by :func:`rel_pos_rank5`: the same
sums with batch and heads merged, (B * heads, q_h, q_w, k_h, k_w), and the two position terms as batched
matrix products. Exact up to float rounding of the products.

Replacing a module global while the call runs is what lets timm's forward stay untouched; the replacement
computes the same values, so another model running timm's MViTv2 at the same moment gets the same result.
"""
from __future__ import annotations

import contextlib
import sys

import torch
from torch import nn

from edgekit.rewrite.swaps import swap_class

NAME = "coreml_mvitv2_rank"
REPLACES = "timm MViTv2 MultiScaleAttention, MultiScaleAttentionPoolFirst"


def apply(model: nn.Module) -> int:
    mvitv2 = sys.modules.get("timm.models.mvitv2")
    if mvitv2 is None:  # never imported (or timm not installed): the model cannot contain one
        return 0
    make = _with_rank5(mvitv2)
    return (swap_class(model, mvitv2.MultiScaleAttention, make)
            + swap_class(model, mvitv2.MultiScaleAttentionPoolFirst, make))


def _distances(q_len: int, k_len: int, device) -> torch.Tensor:
    """(q_len, k_len) indices into a relative-position table, scaled as MViTv2 scales them when q and k
    were pooled to different sizes."""
    q_ratio, k_ratio = max(k_len / q_len, 1.0), max(q_len / k_len, 1.0)
    dist = (torch.arange(q_len, device=device).unsqueeze(-1) * q_ratio
            - torch.arange(k_len, device=device).unsqueeze(0) * k_ratio)
    return (dist + (k_len - 1) * k_ratio).long()


def rel_pos_rank5(attn: torch.Tensor, q: torch.Tensor, has_cls_token: bool, q_size, k_size,
                  rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor) -> torch.Tensor:
    """``timm.models.mvitv2.cal_rel_pos_type`` without a tensor above rank 5."""
    first = 1 if has_cls_token else 0
    (q_h, q_w), (k_h, k_w) = q_size, k_size
    table_h = rel_pos_h[_distances(q_h, k_h, q.device)]  # (q_h, k_h, d)
    table_w = rel_pos_w[_distances(q_w, k_w, q.device)]  # (q_w, k_w, d)
    b, heads, _, d = q.shape
    r_q = q[:, :, first:].reshape(b * heads, q_h, q_w, d)
    # rel_h[n, y, x, k] = sum_c r_q[n, y, x, c] * table_h[y, k, c]: one matrix product per query row y
    rel_h = (r_q.permute(1, 0, 2, 3).reshape(q_h, b * heads * q_w, d) @ table_h.transpose(1, 2))
    rel_h = rel_h.reshape(q_h, b * heads, q_w, k_h).permute(1, 0, 2, 3)  # (B * heads, q_h, q_w, k_h)
    rel_w = (r_q.permute(2, 0, 1, 3).reshape(q_w, b * heads * q_h, d) @ table_w.transpose(1, 2))
    rel_w = rel_w.reshape(q_w, b * heads, q_h, k_w).permute(1, 2, 0, 3)  # (B * heads, q_h, q_w, k_w)
    scores = attn[:, :, first:, first:].reshape(b * heads, q_h, q_w, k_h, k_w)
    scores = scores + rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)
    attn[:, :, first:, first:] = scores.reshape(b, heads, q_h * q_w, k_h * k_w)
    return attn


@contextlib.contextmanager
def _rel_pos_replaced(mvitv2):
    original = mvitv2.cal_rel_pos_type
    mvitv2.cal_rel_pos_type = rel_pos_rank5
    try:
        yield
    finally:
        mvitv2.cal_rel_pos_type = original


def _with_rank5(mvitv2):
    def make(cls: type) -> type:
        class Rank5RelPosAttention(cls):
            def forward(self, x, feat_size):
                with _rel_pos_replaced(mvitv2):
                    return super().forward(x, feat_size)

        return Rank5RelPosAttention

    return make
