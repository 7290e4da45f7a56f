"""Swin window attention -> the ``edgekit::WindowAttention`` plugin op, emitted directly by the exporter.

- edgekit's zoo (``edgekit.models.swin.WindowAttention``): its core ``_attention(q, k, v, bias)`` gets
  the pre-added relative-position bias + shift mask, (nW or 1, heads, N, N); the swap calls the
  plugin with it.
- timm's ``swin_transformer.WindowAttention`` (when timm is installed): ``forward(x, mask)`` is
  replaced by the same computation with the bias assembled as ``rel_pos_bias + mask`` (a constant
  after the exporter's folding) and the core done by the plugin.

The plugin's torch path computes its fp32 reference in eager mode and writes one node under
``torch.onnx.export(dynamo=False)`` (see plugins/window_attention/torch_op.py).
"""
from __future__ import annotations

import importlib.util

import torch
from torch import nn

from edgekit.rewrite.swaps import swap_class

NAME = "window_attention_plugin"
REPLACES = "edgekit or timm Swin WindowAttention"


def apply(model: nn.Module) -> int:
    from edgekit.models.swin import WindowAttention as ZooWindowAttention

    count = swap_class(model, ZooWindowAttention, _zoo)
    timm_cls = _timm_window_attention()
    if timm_cls is not None:
        count += swap_class(model, timm_cls, _timm)
    return count


def apply_zoo_only(model: nn.Module) -> int:
    """The swap for the zoo's Swin only (OpenVINO: timm's Swin converts and fuses without the plugin)."""
    from edgekit.models.swin import WindowAttention as ZooWindowAttention

    return swap_class(model, ZooWindowAttention, _zoo)


def _zoo(cls: type) -> type:
    from edgekit.plugins.window_attention import window_attention

    class PluginWindowAttention(cls):
        def _attention(self, q, k, v, bias=None):
            if bias is None:  # a window without bias is plain attention: the plugin needs a bias tensor
                bias = q.new_zeros(1, q.shape[1], q.shape[2], k.shape[2])
            return window_attention(q, k, v, bias, self.scale, self.num_heads)

    PluginWindowAttention.__name__ = f"Plugin{cls.__name__}"
    return PluginWindowAttention


def _timm(cls: type) -> type:
    from edgekit.plugins.window_attention import window_attention

    class PluginTimmWindowAttention(cls):
        def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
            b_, n, c = x.shape
            q, k, v = self.qkv(x).reshape(b_, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
            bias = self._get_rel_pos_bias()  # (1, heads, N, N)
            if mask is not None:  # (nW, N, N), 0 / -100: one bias per window position
                bias = bias + mask.unsqueeze(1)
            x = window_attention(q, k, v, bias, float(self.scale), self.num_heads)
            return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b_, n, -1)))

    return PluginTimmWindowAttention


def _timm_window_attention() -> type | None:
    if importlib.util.find_spec("timm") is None:
        return None
    from edgekit.timm_compat import import_timm

    import_timm()
    from timm.models.swin_transformer import WindowAttention

    return WindowAttention
