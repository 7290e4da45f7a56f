"""PyTorch reference of edgekit::LinearAttention: the ground truth every other implementation is tested against."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """q, k, v (B, heads, N, d), before the ReLU kernel -> (B, heads, N, d) in q's dtype.

    Always fp32: k^T v and the normaliser are sums over all N tokens (4096 tokens of magnitude 8 already
    reach 262144 > 65504, fp16's max), and eps is below fp16's range.
    """
    dtype = q.dtype
    with torch.autocast(device_type=q.device.type, enabled=False):
        q, k, v = F.relu(q.float()), F.relu(k.float()), v.float()
        kv = k.transpose(-2, -1) @ v  # (B, heads, d, d)
        k_sum = k.sum(dim=-2, keepdim=True)  # (B, heads, 1, d)
        out = (q @ kv) / ((q * k_sum).sum(dim=-1, keepdim=True) + eps)
    return out.to(dtype)
