"""Block sizes and grid of the LinearAttention Triton kernel, from shapes alone (no Triton, no TensorRT).

The interpreter/JIT launcher (``triton_kernel.py``) and the TensorRT AOT implementation (``trt_plugin.py``)
both call these, so the engine launches exactly what the tests checked.

Kernel layout: one program per (batch x head, block of value channels). Batch x head is the grid's x axis:
CUDA allows 2**31 - 1 blocks there but only 65535 along y and z. TensorRT's AOT plugins launch a
single kernel, so each program does both passes itself: stream N to accumulate its (d, block_dv) slice of
k^T v and the (d,) key sum in fp32, then stream N again to write its output channels. Programs of the same
head share nothing, so the key sum is recomputed per channel block (O(N d), cheap next to O(N d^2)).
"""
from __future__ import annotations

from dataclasses import dataclass

MIN_BLOCK = 16  # tl.dot needs every block dimension >= 16
MAX_TOKEN_BLOCK = 64
MAX_VALUE_BLOCK = 64
# fp32 operands: "ieee" keeps fp32 accuracy (the default "tf32" rounds to a 10-bit mantissa, ~1e-3).
# fp16 I/O: the k^T v product runs on fp16 tensor cores with fp32 accumulation whatever this says; the
# (q @ kv) product has fp32 operands (kv exceeds fp16's range) and tf32 matches fp16 output precision.
DOT_PRECISION = {"fp32": "ieee", "fp16": "tf32"}


@dataclass(frozen=True)
class LinearAttentionConfig:
    block_n: int  # tokens per step
    block_d: int  # head_dim (key channels) padded to a power of two
    block_dv: int  # value channels per program
    num_warps: int
    num_stages: int
    dot_precision: str

    @property
    def threads_per_block(self) -> int:
        return self.num_warps * 32


def next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def kernel_config(seq_len: int, head_dim: int, dtype: str, block_dv: int | None = None) -> LinearAttentionConfig:
    """Config for ``seq_len`` tokens (N, or its upper bound) of ``head_dim`` (d); dtype "fp32" or "fp16".

    ``block_dv`` (a power of two >= 16) overrides how many value channels one program writes.
    """
    if dtype not in DOT_PRECISION:
        raise ValueError(f"dtype must be one of {sorted(DOT_PRECISION)}, got {dtype!r}")
    if seq_len < 1 or head_dim < 1:
        raise ValueError(f"seq_len and head_dim must be >= 1, got {seq_len}, {head_dim}")
    block_d = max(MIN_BLOCK, next_power_of_2(head_dim))
    if block_d > 256:
        raise ValueError(f"head_dim {head_dim} > 256 is not supported by the LinearAttention kernel")
    if block_dv is None:
        block_dv = min(block_d, MAX_VALUE_BLOCK)
    elif block_dv < MIN_BLOCK or block_dv & (block_dv - 1) or block_dv > block_d:
        raise ValueError(f"block_dv must be a power of two in [{MIN_BLOCK}, {block_d}], got {block_dv}")
    block_n = min(MAX_TOKEN_BLOCK, max(MIN_BLOCK, next_power_of_2(seq_len)))
    if block_d >= 128:  # (block_n x block_d) tiles plus the (block_d x block_dv) state: stay in registers
        block_n = min(block_n, 32)
    return LinearAttentionConfig(
        block_n=block_n, block_d=block_d, block_dv=block_dv, num_warps=4,
        # prefetch the next token block only in fp16: in fp32 two stages can pass the 48 KiB of shared memory
        # a launch may use without opting in
        num_stages=2 if seq_len > block_n and dtype == "fp16" else 1, dot_precision=DOT_PRECISION[dtype],
    )


def grid(config: LinearAttentionConfig, batch, num_heads, head_dim, cdiv=ceil_div) -> tuple:
    """(B * heads, value-channel blocks, 1). Works on ints and, with ``cdiv=tensorrt.plugin.cdiv``, ShapeExprs."""
    return (batch * num_heads, cdiv(head_dim, config.block_dv), 1)
