"""edgekit::LinearAttention: EfficientViT's ReLU linear attention, accumulated in fp32.

Models call ``linear_attention(q, k, v, eps)``; see README.md for what runs where.
"""
from edgekit.plugins.linear_attention.schema import SCHEMA
from edgekit.plugins.linear_attention.torch_op import linear_attention

__all__ = ["SCHEMA", "linear_attention"]
