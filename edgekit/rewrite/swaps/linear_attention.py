"""EfficientViT ReLU linear attention -> the ``edgekit::LinearAttention`` plugin op, emitted directly.

- edgekit's zoo (``edgekit.models.efficientvit.LiteMLA``): ``_linear_attention(q, k, v)`` takes the
  pre-ReLU q, k, v and ``self.eps``; the swap calls the plugin with them. A block built with
  ``quadratic=True`` computes the (N, N) form on purpose (cheaper when N <= d) and is left alone.
- timm's ``efficientvit_mit.LiteMLA`` (when timm is installed, kernel ReLU): ``forward`` applies the
  ReLU and pads v with a ones column before its core; the swap keeps the multi-scale projection and
  hands the pre-ReLU q, k, v to the plugin.
"""
from __future__ import annotations

import importlib.util

import torch
from torch import nn

from edgekit.rewrite.swaps import swap_class

NAME = "linear_attention_plugin"
REPLACES = "edgekit or timm EfficientViT LiteMLA (ReLU, linear form)"


def apply(model: nn.Module) -> int:
    from edgekit.models.efficientvit import LiteMLA

    count = swap_class(model, LiteMLA, _zoo, accept=lambda m: not m.quadratic)
    timm_cls = _timm_lite_mla()
    if timm_cls is not None:
        count += swap_class(model, timm_cls, _timm, accept=lambda m: isinstance(m.kernel_func, nn.ReLU))
    return count


def _zoo(cls: type) -> type:
    from edgekit.plugins.linear_attention import linear_attention

    class PluginLiteMLA(cls):
        def _linear_attention(self, q, k, v):
            return linear_attention(q, k, v, eps=self.eps)

    PluginLiteMLA.__name__ = f"Plugin{cls.__name__}"
    return PluginLiteMLA


def _timm(cls: type) -> type:
    from edgekit.plugins.linear_attention import linear_attention

    class PluginTimmLiteMLA(cls):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, _, h, w = x.shape
            qkv = self.qkv(x)
            qkv = torch.cat([qkv] + [op(qkv) for op in self.aggreg], dim=1)
            qkv = qkv.reshape(b, -1, 3 * self.dim, h * w).transpose(-1, -2)
            q, k, v = qkv.chunk(3, dim=-1)
            out = linear_attention(q, k, v, eps=self.eps)  # ReLU kernel and normaliser inside the op
            return self.proj(out.transpose(-1, -2).reshape(b, -1, h, w))

    return PluginTimmLiteMLA


def _timm_lite_mla() -> type | None:
    if importlib.util.find_spec("timm") is None:
        return None
    from edgekit.timm_compat import import_timm

    import_timm()
    from timm.models.efficientvit_mit import LiteMLA

    return LiteMLA
