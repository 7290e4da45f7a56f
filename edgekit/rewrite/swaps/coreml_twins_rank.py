"""timm Twins' locally-grouped attention at rank <= 5 (CoreML allows tensors of rank <= 5).

``twins.LocallyGroupedAttn`` groups tokens into ws x ws windows through a rank-6 view (B, H/ws, ws, W/ws, ws, C),
unpacks q, k and v through another (3, B, windows, heads, ws*ws, d), and reverses the grouping the same way.
coremltools 9 converts none of them: timm Twins-SVT fails with "Core ML only supports tensors with rank <= 5"
(measured here: the compatibility corpus's slimmed Twins). The swap

- groups windows with the zoo Swin's rank-4 ``window_partition``/``window_reverse`` (a window is a group, in
  the same (batch, row, column) order), shared from edgekit.models.swin;
- folds the windows into the batch for attention: (B * windows, heads, ws*ws, d), rank 4.

Padding to a multiple of ws and the crop back are Twins' own. Exact.
"""
from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.rewrite.swaps import swap_class

NAME = "coreml_twins_rank"
REPLACES = "timm Twins LocallyGroupedAttn"


def apply(model: nn.Module) -> int:
    if importlib.util.find_spec("timm") is None:
        return 0
    from edgekit.timm_compat import import_timm

    import_timm()
    from timm.models.twins import LocallyGroupedAttn

    return swap_class(model, LocallyGroupedAttn, _rank4)


def _rank4(cls: type) -> type:
    from edgekit.models.swin import window_partition, window_reverse

    class Rank4LocallyGroupedAttn(cls):
        def forward(self, x: torch.Tensor, size) -> torch.Tensor:
            b, n, c = x.shape
            h, w = size
            ws, heads = self.ws, self.num_heads
            pad_r, pad_b = (ws - w % ws) % ws, (ws - h % ws) % ws
            x = F.pad(x.view(b, h, w, c), (0, 0, 0, pad_r, 0, pad_b))
            hp, wp = h + pad_b, w + pad_r
            x = window_partition(x, (ws, ws), (hp, wp), c)  # (B * windows, ws*ws, C)
            q, k, v = (t.reshape(-1, ws * ws, heads, c // heads).transpose(1, 2)
                       for t in self.qkv(x).split(c, dim=-1))  # each (B * windows, heads, ws*ws, d)
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            x = (attn @ v).transpose(1, 2).reshape(-1, ws * ws, c)
            x = window_reverse(x, (ws, ws), (hp, wp), c)  # (B, Hp, Wp, C)
            if pad_r > 0 or pad_b > 0:
                x = x[:, :h, :w, :].contiguous()
            return self.proj_drop(self.proj(x.reshape(b, n, c)))

    return Rank4LocallyGroupedAttn
