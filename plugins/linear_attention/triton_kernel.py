"""Triton kernel of edgekit::LinearAttention (fp32 and fp16 I/O, fp32 state) and its torch launcher.

Why fp32 accumulation is not optional: with fp16 I/O, k^T v sums N products; 4096 tokens of magnitude 8
give 262144, four times fp16's largest value (65504). Here k^T v and the key sum accumulate in fp32
registers (fp16 tensor-core products, fp32 accumulator), and (q @ kv) / (q . ksum + eps) is formed in fp32;
only the output, a convex combination of the values and so within their range, is rounded to fp16.

Argument order is (input pointers, int32 scalars, output pointer, constexprs): the order TensorRT's AOT
plugins pass arguments in (inputs, extra args, outputs). Inputs must be contiguous (TensorRT LINEAR format).

On the CPU, set ``TRITON_INTERPRET=1`` before importing this module.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from edgekit.plugins.linear_attention.launch_params import LinearAttentionConfig, grid, kernel_config
from edgekit.plugins.linear_attention.schema import SCHEMA, output_shape

TORCH_TO_TRITON = {torch.float32: "fp32", torch.float16: "fp16"}


@triton.jit
def linear_attention_kernel(
    q_ptr, k_ptr, v_ptr,
    seq_len, head_dim,
    out_ptr,
    EPS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_bh = tl.program_id(0)  # batch * num_heads + head (grid x: no 65535 limit)
    pid_v = tl.program_id(1)  # block of value channels
    base = pid_bh.to(tl.int64) * seq_len * head_dim
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = pid_v * BLOCK_DV + tl.arange(0, BLOCK_DV)
    mask_d = offs_d < head_dim
    mask_dv = offs_dv < head_dim

    # pass 1: kv = relu(k)^T v (d x block_dv) and k_sum = sum_n relu(k), both fp32
    kv = tl.zeros([BLOCK_D, BLOCK_DV], tl.float32)
    k_sum = tl.zeros([BLOCK_D], tl.float32)
    for start_n in range(0, seq_len, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        mask_n = offs_n < seq_len
        k = tl.load(
            k_ptr + base + offs_n[:, None] * head_dim + offs_d[None, :],
            mask=mask_n[:, None] & mask_d[None, :], other=0.0,
        )
        k = tl.maximum(k, 0.0)
        v = tl.load(
            v_ptr + base + offs_n[:, None] * head_dim + offs_dv[None, :],
            mask=mask_n[:, None] & mask_dv[None, :], other=0.0,
        )
        kv = tl.dot(tl.trans(k), v, kv, input_precision=DOT_PRECISION)
        k_sum += tl.sum(k.to(tl.float32), axis=0)

    # pass 2: out = (relu(q) @ kv) / (relu(q) . k_sum + eps), fp32 until the store
    for start_n in range(0, seq_len, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        mask_n = offs_n < seq_len
        q = tl.load(
            q_ptr + base + offs_n[:, None] * head_dim + offs_d[None, :],
            mask=mask_n[:, None] & mask_d[None, :], other=0.0,
        )
        q = tl.maximum(q.to(tl.float32), 0.0)
        numerator = tl.dot(q, kv, input_precision=DOT_PRECISION)
        denominator = tl.sum(q * k_sum[None, :], axis=1) + EPS
        out = numerator / denominator[:, None]
        tl.store(
            out_ptr + base + offs_n[:, None] * head_dim + offs_dv[None, :],
            out.to(out_ptr.dtype.element_ty),
            mask=mask_n[:, None] & mask_dv[None, :],
        )


def linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6, config: LinearAttentionConfig | None = None
) -> torch.Tensor:
    """Run the kernel on torch tensors: q, k, v (B, heads, N, d) fp32/fp16, before the ReLU kernel."""
    output_shape(q.shape, k.shape, v.shape)
    eps = SCHEMA.resolve(eps=eps)["eps"]
    if q.dtype not in TORCH_TO_TRITON:
        raise TypeError(f"LinearAttention kernel supports {sorted(map(str, TORCH_TO_TRITON))}, got {q.dtype}")
    q, k, v = (t.to(q.dtype).contiguous() for t in (q, k, v))
    batch, num_heads, seq_len, head_dim = q.shape
    config = config or kernel_config(seq_len, head_dim, TORCH_TO_TRITON[q.dtype])
    out = torch.empty_like(q)
    linear_attention_kernel[grid(config, batch, num_heads, head_dim)](
        q, k, v,
        seq_len, head_dim,
        out,
        EPS=eps,
        BLOCK_N=config.block_n,
        BLOCK_D=config.block_d,
        BLOCK_DV=config.block_dv,
        DOT_PRECISION=config.dot_precision,
        num_warps=config.num_warps,
        num_stages=config.num_stages,
    )
    return out
