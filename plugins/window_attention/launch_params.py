"""Block sizes and grid of the WindowAttention Triton kernel, from shapes alone (no Triton, no TensorRT).

The interpreter/JIT launcher (``triton_kernel.py``) and the TensorRT AOT implementation (``trt_plugin.py``)
both call these, so the engine launches exactly what the tests checked.

Kernel layout: one program per (window x head, query block). Window x head is the grid's x axis: CUDA
allows 2**31 - 1 blocks there but only 65535 along y and z, and B_ * heads passes 65535 at Swin-T's stage 1
(64 windows x 3 heads) from batch 342 on. Each program streams the keys and values
of its window in ``block_n`` chunks with an online softmax, so any N works (Swin: N=49 -> one 64 chunk;
SwinV2 N=144/256 -> several) and register use does not grow with N.
"""
from __future__ import annotations

from dataclasses import dataclass

MIN_BLOCK = 16  # tl.dot needs every block dimension >= 16
MAX_SEQ_BLOCK = 64
# fp32 operands: "ieee" keeps fp32 accuracy (the default "tf32" rounds to a 10-bit mantissa, ~1e-3).
# fp16 operands go to tensor cores whatever this says.
DOT_PRECISION = {"fp32": "ieee", "fp16": "tf32"}


@dataclass(frozen=True)
class WindowAttentionConfig:
    block_m: int  # queries per program
    block_n: int  # keys per inner step
    block_d: int  # head_dim padded to a power of two
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


def kernel_config(seq_len: int, head_dim: int, dtype: str) -> WindowAttentionConfig:
    """Config for windows of ``seq_len`` tokens (N) and ``head_dim`` (d); dtype "fp32" or "fp16".

    ``seq_len`` may be an upper bound (TensorRT profile max): blocks are masked, any N <= it works.
    """
    if dtype not in DOT_PRECISION:
        raise ValueError(f"dtype must be one of {sorted(DOT_PRECISION)}, got {dtype!r}")
    if seq_len < 1 or head_dim < 1:
        raise ValueError(f"seq_len and head_dim must be >= 1, got {seq_len}, {head_dim}")
    block_d = max(MIN_BLOCK, next_power_of_2(head_dim))
    if block_d > 256:
        raise ValueError(f"head_dim {head_dim} > 256 is not supported by the WindowAttention kernel")
    block_seq = min(MAX_SEQ_BLOCK, max(MIN_BLOCK, next_power_of_2(seq_len)))
    if block_d >= 128:  # (block_m x block_d) accumulators: halve the tile to stay in registers
        block_seq = min(block_seq, 32)
    # Software pipelining (2 stages) prefetches the next key/value chunk; pointless when one chunk holds the
    # window, and in fp32 it doubles shared memory past the 48 KiB a launch may use without opting in.
    num_stages = 2 if seq_len > block_seq and dtype == "fp16" else 1
    return WindowAttentionConfig(
        block_m=block_seq, block_n=block_seq, block_d=block_d, num_warps=4, num_stages=num_stages,
        dot_precision=DOT_PRECISION[dtype],
    )


def grid(config: WindowAttentionConfig, batch_windows, num_heads, seq_len, cdiv=ceil_div) -> tuple:
    """(B_ * heads, query blocks, 1). Works on ints and, with ``cdiv=tensorrt.plugin.cdiv``, on ShapeExprs."""
    return (batch_windows * num_heads, cdiv(seq_len, config.block_m), 1)
