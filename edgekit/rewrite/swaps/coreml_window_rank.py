"""timm Swin's window partition/reverse at rank 4 (CoreML allows tensors of rank <= 5).

timm's ``SwinTransformerBlock._attn`` partitions with a rank-6 view + permute. coremltools 9 happens to
collapse that exact reshape-permute-reshape chain, but refuses any rank-6 tensor it cannot collapse
("Core ML only supports tensors with rank <= 5"), so the block is swapped for one that partitions with
the zoo Swin's rank-4 ``window_partition``/``window_reverse`` (edgekit.models.swin): same windows,
same order, no tensor above rank 4.
"""
from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.rewrite.swaps import swap_class

NAME = "coreml_window_rank"
REPLACES = "timm SwinTransformerBlock"


def apply(model: nn.Module) -> int:
    if importlib.util.find_spec("timm") is None:
        return 0
    from edgekit.timm_compat import import_timm

    import_timm()
    from timm.models.swin_transformer import SwinTransformerBlock

    return swap_class(model, SwinTransformerBlock, _rank4)


def _rank4(cls: type) -> type:
    from edgekit.models.swin import window_partition, window_reverse

    class Rank4SwinTransformerBlock(cls):
        def _attn(self, x: torch.Tensor) -> torch.Tensor:
            _, h, w, c = x.shape
            if any(self.shift_size):
                x = torch.roll(x, shifts=(-self.shift_size[0], -self.shift_size[1]), dims=(1, 2))
            pad_h = (self.window_size[0] - h % self.window_size[0]) % self.window_size[0]
            pad_w = (self.window_size[1] - w % self.window_size[1]) % self.window_size[1]
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
            hp, wp = h + pad_h, w + pad_w
            windows = window_partition(x, self.window_size, (hp, wp), c)  # (B*nW, N, C)
            mask = self.get_attn_mask(x) if getattr(self, "dynamic_mask", False) else self.attn_mask
            windows = self.attn(windows, mask=mask)
            x = window_reverse(windows, self.window_size, (hp, wp), c)[:, :h, :w, :]
            if any(self.shift_size):
                x = torch.roll(x, shifts=self.shift_size, dims=(1, 2))
            return x

    return Rank4SwinTransformerBlock
