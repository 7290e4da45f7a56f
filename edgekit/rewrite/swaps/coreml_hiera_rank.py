"""transformers Hiera's mask-unit attention at rank <= 5 (CoreML allows tensors of rank <= 5).

``HieraMaskUnitAttention`` unpacks q, k and v through a rank-6 view of its QKV projection,
(B, tokens per unit, units, 3, heads, d) permuted to (3, B, heads, units, tokens, d), and pools queries
through another rank-6 view (B, heads, units, stride, tokens / stride, d). coremltools 9 converts neither:
a transformers Hiera fails with "Core ML only supports tensors with rank <= 5" (measured here). The swap

- splits the projection's channels into q, k and v first, so each is a rank-5 (B, tokens, units, heads, d)
  view permuted to (B, heads, units, tokens, d);
- pools queries over a (B * heads, units, stride, tokens / stride, d) view.

The attention and the output are Hiera's own, element for element (exact).
"""
from __future__ import annotations

import sys

import torch
from torch import nn

from edgekit.rewrite.swaps import swap_class

NAME = "coreml_hiera_rank"
REPLACES = "transformers HieraMaskUnitAttention"


def apply(model: nn.Module) -> int:
    hiera = sys.modules.get("transformers.models.hiera.modeling_hiera")
    if hiera is None:  # never imported (or transformers not installed): the model cannot contain one
        return 0
    return swap_class(model, hiera.HieraMaskUnitAttention, _rank5)


def _rank5(cls: type) -> type:
    class Rank5HieraMaskUnitAttention(cls):
        def forward(self, hidden_states: torch.Tensor, output_attentions: bool = False):
            batch, seq_len, _ = hidden_states.shape
            units, tokens = 1, seq_len
            if self.use_mask_unit_attn:
                units = seq_len // (self.query_stride * self.window_size)
                tokens = self.query_stride * self.window_size
            heads, dim = self.num_heads, self.head_dim
            qkv = self.qkv(hidden_states).reshape(batch, tokens, units, 3 * heads * dim)
            query, key, value = (part.reshape(batch, tokens, units, heads, dim).permute(0, 3, 2, 1, 4)
                                 for part in qkv.split(heads * dim, dim=-1))  # each (B, heads, units, tokens, d)
            if self.query_stride > 1:
                query = query.reshape(batch * heads, units, self.query_stride, tokens // self.query_stride, dim)
                query = query.max(dim=2).values.reshape(batch, heads, units, tokens // self.query_stride, dim)
            attn_weights = ((query * self.scale) @ key.transpose(-1, -2)).softmax(dim=-1)
            attn_output = (attn_weights @ value).transpose(1, 3).reshape(batch, -1, self.hidden_size_output)
            attn_output = self.proj(attn_output)
            return (attn_output, attn_weights) if output_attentions else (attn_output, None)

    return Rank5HieraMaskUnitAttention
