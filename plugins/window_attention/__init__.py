"""edgekit::WindowAttention: windowed softmax attention with an additive per-window bias (Swin).

Models call ``window_attention(q, k, v, bias, scale)``; see README.md for what runs where.
"""
from edgekit.plugins.window_attention.schema import SCHEMA
from edgekit.plugins.window_attention.torch_op import window_attention

__all__ = ["SCHEMA", "window_attention"]
