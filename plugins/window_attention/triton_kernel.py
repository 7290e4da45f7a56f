"""Triton kernel of edgekit::WindowAttention (fp32 and fp16 I/O, fp32 softmax) and its torch launcher.

The kernel is flash-attention shaped: a program owns ``block_m`` queries of one (window, head), streams
that window's keys/values ``block_n`` at a time, adds bias[window % nW, head] and keeps a running max and
sum (online softmax), all in fp32. fp16 inputs feed tensor cores with fp32 accumulation; the softmax
probabilities are rounded to fp16 only as the operand of the final P @ V product (standard practice: they
lie in [0, 1]).

Argument order is (input pointers, int32 scalars, output pointer, constexprs): the order TensorRT's AOT
plugins pass arguments in (inputs, extra args, outputs). Inputs must be contiguous (TensorRT LINEAR format).

On the CPU, set ``TRITON_INTERPRET=1`` before importing this module.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from edgekit.plugins.window_attention.launch_params import WindowAttentionConfig, grid, kernel_config
from edgekit.plugins.window_attention.schema import output_shape

TORCH_TO_TRITON = {torch.float32: "fp32", torch.float16: "fp16"}


@triton.jit
def window_attention_kernel(
    q_ptr, k_ptr, v_ptr, bias_ptr,
    seq_len, head_dim, num_heads, num_windows,
    out_ptr,
    SCALE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_bh = tl.program_id(0)  # window * num_heads + head, windows batch-major (grid x: no 65535 limit)
    pid_m = tl.program_id(1)
    head = pid_bh % num_heads
    window = (pid_bh // num_heads) % num_windows
    qkv_base = pid_bh.to(tl.int64) * seq_len * head_dim
    bias_base = (window * num_heads + head).to(tl.int64) * seq_len * seq_len

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask_m = offs_m < seq_len
    mask_d = offs_d < head_dim
    q = tl.load(
        q_ptr + qkv_base + offs_m[:, None] * head_dim + offs_d[None, :],
        mask=mask_m[:, None] & mask_d[None, :], other=0.0,
    )

    row_max = tl.full([BLOCK_M], float("-inf"), tl.float32)
    row_sum = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start_n in range(0, seq_len, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        mask_n = offs_n < seq_len
        kv_offsets = qkv_base + offs_n[:, None] * head_dim + offs_d[None, :]
        kv_mask = mask_n[:, None] & mask_d[None, :]
        k = tl.load(k_ptr + kv_offsets, mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + kv_offsets, mask=kv_mask, other=0.0)

        logits = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * SCALE
        bias = tl.load(
            bias_ptr + bias_base + offs_m[:, None] * seq_len + offs_n[None, :],
            mask=mask_m[:, None] & mask_n[None, :], other=0.0,
        )
        logits = logits + bias.to(tl.float32)
        logits = tl.where(mask_n[None, :], logits, float("-inf"))  # padded keys get no weight

        new_max = tl.maximum(row_max, tl.max(logits, axis=1))
        rescale = tl.exp(row_max - new_max)  # 0 on the first chunk (row_max = -inf)
        p = tl.exp(logits - new_max[:, None])
        row_sum = row_sum * rescale + tl.sum(p, axis=1)
        acc = tl.dot(p.to(v.dtype), v, acc * rescale[:, None], input_precision=DOT_PRECISION)
        row_max = new_max

    out = acc / row_sum[:, None]
    tl.store(
        out_ptr + qkv_base + offs_m[:, None] * head_dim + offs_d[None, :],
        out.to(out_ptr.dtype.element_ty),
        mask=mask_m[:, None] & mask_d[None, :],
    )


def window_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float,
    config: WindowAttentionConfig | None = None,
) -> torch.Tensor:
    """Run the kernel on torch tensors: q, k, v (B_, heads, N, d) fp32/fp16; bias (nW, heads, N, N)."""
    output_shape(q.shape, k.shape, v.shape, bias.shape)
    if q.dtype not in TORCH_TO_TRITON:
        raise TypeError(f"WindowAttention kernel supports {sorted(map(str, TORCH_TO_TRITON))}, got {q.dtype}")
    q, k, v = (t.to(q.dtype).contiguous() for t in (q, k, v))
    bias = bias.to(q.dtype).contiguous()
    batch_windows, num_heads, seq_len, head_dim = q.shape
    config = config or kernel_config(seq_len, head_dim, TORCH_TO_TRITON[q.dtype])
    out = torch.empty_like(q)
    window_attention_kernel[grid(config, batch_windows, num_heads, seq_len)](
        q, k, v, bias,
        seq_len, head_dim, num_heads, bias.shape[0],
        out,
        SCALE=float(scale),
        BLOCK_M=config.block_m,
        BLOCK_N=config.block_n,
        BLOCK_D=config.block_d,
        DOT_PRECISION=config.dot_precision,
        num_warps=config.num_warps,
        num_stages=config.num_stages,
    )
    return out
