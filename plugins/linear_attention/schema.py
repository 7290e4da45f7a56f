"""edgekit::LinearAttention (version 1): EfficientViT's ReLU linear attention.

    q, k, v : (B, heads, N, d)        BEFORE the ReLU kernel
    out     : (B, heads, N, d)        dtype of q

    q, k = relu(q), relu(k)
    kv   = k^T v            (d, d)    accumulated in fp32
    ksum = sum_n k          (d,)      accumulated in fp32
    out  = (q @ kv) / (q . ksum + eps)

Cost is linear in N. ``eps`` must be >= 1e-6: EfficientViT's original 1e-15 is below fp16's smallest
subnormal (~6e-8) and silently becomes 0 wherever a runtime lowers the constant to half precision.
"""
from __future__ import annotations

from edgekit.plugins.op_schema import AttributeSpec, OpSchema, TensorSpec, at_least, one_of, shape_error

OP_NAME = "LinearAttention"
MIN_EPS = 1e-6
KERNELS = ("relu",)


def output_shape(q_shape, k_shape, v_shape) -> tuple[int, ...]:
    """Shape rule: out has q's shape. Raises ValueError naming the offending shapes."""
    q_shape, k_shape, v_shape = (tuple(int(d) for d in s) for s in (q_shape, k_shape, v_shape))
    if len(q_shape) != 4:
        raise shape_error(OP_NAME, "q, k, v must be (B, heads, N, d)", q=q_shape, k=k_shape, v=v_shape)
    if k_shape != q_shape or v_shape != q_shape:
        raise shape_error(OP_NAME, "q, k and v must have the same shape", q=q_shape, k=k_shape, v=v_shape)
    return q_shape


SCHEMA = OpSchema(
    name=OP_NAME,
    inputs=(
        TensorSpec("q", "(B, heads, N, d) queries, before the ReLU kernel"),
        TensorSpec("k", "(B, heads, N, d) keys, before the ReLU kernel"),
        TensorSpec("v", "(B, heads, N, d) values"),
    ),
    outputs=(TensorSpec("out", "(B, heads, N, d), dtype of q"),),
    attributes=(
        AttributeSpec(
            "eps", float, "added to the normaliser", default=MIN_EPS,
            check=at_least(MIN_EPS, "smaller values underflow in fp16"),
        ),
        AttributeSpec("kernel", str, "feature map applied to q and k", default="relu", check=one_of(*KERNELS)),
    ),
    output_shape=output_shape,
    doc=__doc__,
)
