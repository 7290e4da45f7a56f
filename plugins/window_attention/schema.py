"""edgekit::WindowAttention (version 1): softmax attention inside windows, with an additive per-window bias.

    q, k, v : (B_, heads, N, d)       B_ = batch * num_windows, windows batch-major
    bias    : (nW, heads, N, N)       relative position bias (+ shift mask) pre-added; nW = num_windows or 1
    out     : (B_, heads, N, d)       same dtype as q

    out[b, h] = softmax(q[b, h] @ k[b, h]^T * scale + bias[b % nW, h]) @ v[b, h]

The softmax (and the two products around it) are computed in fp32 even for fp16 inputs.
"""
from __future__ import annotations

from edgekit.plugins.op_schema import AttributeSpec, OpSchema, TensorSpec, positive_finite, shape_error

OP_NAME = "WindowAttention"


def output_shape(q_shape, k_shape, v_shape, bias_shape) -> tuple[int, ...]:
    """Shape rule: out has q's shape. Raises ValueError naming the offending shapes."""
    q_shape, k_shape, v_shape, bias_shape = (tuple(int(d) for d in s) for s in (q_shape, k_shape, v_shape, bias_shape))
    shapes = dict(q=q_shape, k=k_shape, v=v_shape, bias=bias_shape)
    if len(q_shape) != 4 or len(bias_shape) != 4:
        raise shape_error(OP_NAME, "q, k, v must be (B_, heads, N, d) and bias (nW, heads, N, N)", **shapes)
    if k_shape != q_shape or v_shape != q_shape:
        raise shape_error(OP_NAME, "q, k and v must have the same shape", **shapes)
    batch_windows, heads, n, _ = q_shape
    n_windows = bias_shape[0]
    if bias_shape[1:] != (heads, n, n):
        raise shape_error(OP_NAME, "bias must be (nW, heads, N, N)", **shapes)
    if n_windows < 1 or batch_windows % n_windows:
        raise shape_error(OP_NAME, "B_ must be a multiple of bias.shape[0] (nW)", **shapes)
    return q_shape


SCHEMA = OpSchema(
    name=OP_NAME,
    inputs=(
        TensorSpec("q", "(B_, heads, N, d) queries"),
        TensorSpec("k", "(B_, heads, N, d) keys"),
        TensorSpec("v", "(B_, heads, N, d) values"),
        TensorSpec("bias", "(nW, heads, N, N) additive bias; window b uses bias[b % nW]"),
    ),
    outputs=(TensorSpec("out", "(B_, heads, N, d), dtype of q"),),
    attributes=(
        AttributeSpec("scale", float, "logit scale, usually head_dim ** -0.5", check=positive_finite),
        AttributeSpec(
            "num_heads", int, "heads (== q.shape[1]); redundant, but a plugin field TensorRT's parser passes",
            check=lambda n: None if n >= 1 else "must be >= 1",
        ),
    ),
    output_shape=output_shape,
    doc=__doc__,
)


def check_inputs(q_shape, k_shape, v_shape, bias_shape, num_heads: int) -> tuple[int, ...]:
    """Shape rule plus the one cross-check between an attribute and a shape."""
    out = output_shape(q_shape, k_shape, v_shape, bias_shape)
    if int(q_shape[1]) != int(num_heads):
        raise ValueError(f"{OP_NAME}: num_heads={num_heads} but q has {q_shape[1]} heads")
    return out
