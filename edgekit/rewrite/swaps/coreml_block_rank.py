"""timm NesT's image blocks at rank <= 5 (CoreML allows tensors of rank <= 5).

NesT carries an extra "block" axis: ``NestLevel`` cuts the (B, H, W, C) map into blocks with a rank-6
reshape + transpose, and its ``Attention`` splits q, k, v as a rank-6 (3, B, heads, T, N, d) tensor.
coremltools 9 collapses neither: converting ``timm:nest_tiny`` fails with "Core ML only supports
tensors with rank <= 5" (measured here). The swap

- cuts blocks with the zoo Swin's rank-4 ``window_partition``/``window_reverse`` (a block is a window,
  in the same (batch, row, column) order), shared from edgekit.models.swin;
- folds the block axis into the batch for attention: (B*T, heads, N, d) at rank 5 at most, with the
  output channels laid out as NesT's are (per-head channel outer, head inner).
"""
from __future__ import annotations

import importlib.util

import torch
from torch import nn

from edgekit.rewrite.swaps import swap_class

NAME = "coreml_block_rank"
REPLACES = "timm NesT NestLevel or nest.Attention"


def apply(model: nn.Module) -> int:
    if importlib.util.find_spec("timm") is None:
        return 0
    from edgekit.timm_compat import import_timm

    import_timm()
    from timm.models.nest import Attention, NestLevel

    return swap_class(model, NestLevel, _rank4) + swap_class(model, Attention, _attention_rank5)


def _rank4(cls: type) -> type:
    from edgekit.models.swin import window_partition, window_reverse

    class Rank4NestLevel(cls):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.pool(x).permute(0, 2, 3, 1)  # (B, H, W, C)
            b, h, w, c = x.shape
            bs = (self.block_size, self.block_size)
            x = window_partition(x, bs, (h, w), c).reshape(b, -1, bs[0] * bs[1], c)  # (B, T, N, C)
            x = self.transformer_encoder(x + self.pos_embed)
            x = window_reverse(x.reshape(-1, bs[0] * bs[1], c), bs, (h, w), c)  # (B, H, W, C)
            return x.permute(0, 3, 1, 2)

    return Rank4NestLevel


def _attention_rank5(cls: type) -> type:
    import torch.nn.functional as F

    class Rank5NestAttention(cls):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, t, n, c = x.shape
            heads = self.num_heads
            qkv = self.qkv(x).reshape(b * t, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)  # (3, B*T, H, N, d)
            q, k, v = qkv.unbind(0)
            if self.fused_attn:
                x = F.scaled_dot_product_attention(q, k, v)
            else:
                x = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1) @ v
            x = x.permute(0, 2, 3, 1).reshape(b, t, n, c)  # channels (d, head), as NesT lays them out
            return self.proj_drop(self.proj(x))

    return Rank5NestAttention
