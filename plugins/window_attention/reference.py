"""PyTorch reference of edgekit::WindowAttention: the ground truth every other implementation is tested against."""
from __future__ import annotations

import torch


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float) -> torch.Tensor:
    """q, k, v (B_, heads, N, d); bias (nW, heads, N, N) -> (B_, heads, N, d) in q's dtype.

    Computed in fp32 whatever the input dtype: fp16 logits plus a -100 shift mask lose the bias' precision,
    and the softmax' sum is the classic fp16 overflow spot.
    """
    dtype = q.dtype
    batch_windows, heads, n, _ = q.shape
    n_windows = bias.shape[0]
    with torch.autocast(device_type=q.device.type, enabled=False):
        q, k, v, bias = (t.float() for t in (q, k, v, bias))
        logits = (q @ k.transpose(-2, -1)) * scale  # (B_, heads, N, N)
        # windows are batch-major (b = image * nW + w), so a (B, nW, ...) view lines window w up with bias[w]
        logits = logits.view(batch_windows // n_windows, n_windows, heads, n, n) + bias.unsqueeze(0)
        attn = logits.view(batch_windows, heads, n, n).softmax(dim=-1)
        out = attn @ v
    return out.to(dtype)
