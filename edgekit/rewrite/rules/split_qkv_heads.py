"""A packed QKV projection split into q, k, v first, then into heads, at rank 4.

timm (and most ViT code) splits the fused QKV projection through a rank-5 view::

    qkv (B, N, 3C) --Reshape--> (B, N, 3, h, d) --Transpose(2,0,3,1,4)--> (3, B, h, N, d)
        --Split(axis 0) | Gather 0/1/2--> --Squeeze--> q, k, v (B, h, N, d)

Splitting the channels first keeps every tensor at rank <= 4 (CoreML's limit is 5), is one copy
less, and puts q, k and v in the form the attention fusions match::

    qkv --Split(axis -1, [C, C, C])--> each --Reshape--> (B, N, h, d) --Transpose(0,2,1,3)--> (B, h, N, d)

Numerics: the same elements in the same places, bit-identical.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite.matching import apply_patterns, attr_ints, const_ints, initializer, static_shape

NAME = "split_qkv_heads"
_PERM = [2, 0, 3, 1, 4]


class _SplitQKV(orp.RewriteRuleClassBase):
    def __init__(self, unpack: str):
        super().__init__(f"SplitQKV[{unpack}]")
        self.unpack = unpack  # "split" (Split + Squeeze, from unbind) or "gather" (qkv[0], qkv[1], qkv[2])

    def pattern(self, op, qkv, shape, sizes, i0, i1, i2):
        heads = op.Transpose(op.Reshape(qkv, shape, _allow_other_attributes=True, _outputs=["packed"]), perm=_PERM)
        if self.unpack == "split":
            a, b, c = op.Split(heads, sizes, axis=0, _outputs=3)
            return op.Squeeze(a, i0), op.Squeeze(b, i1), op.Squeeze(c, i2)
        return op.Gather(heads, i0, axis=0), op.Gather(heads, i1, axis=0), op.Gather(heads, i2, axis=0)

    def check(self, context, qkv, packed, i0, i1, i2, sizes=None, **_):
        result = orp.MatchResult()
        shape = static_shape(packed)
        if shape is None:
            return result.fail("the QKV view has no static shape (a dynamic batch keeps it symbolic)")
        if len(shape) != 5 or shape[2] != 3:
            return result.fail(f"the QKV view {shape} is not a static (B, N, 3, heads, d)")
        expected = ([0], [0], [0]) if self.unpack == "split" else ([0], [1], [2])
        got = tuple(const_ints(i) for i in (i0, i1, i2))
        if got != expected:
            return result.fail(f"q, k, v are taken with indices {got}, not {expected}")
        if sizes is not None and const_ints(sizes) != [1, 1, 1]:
            return result.fail("the Split is not into three equal parts")
        if static_shape(qkv) is None or static_shape(qkv)[-1] != 3 * shape[3] * shape[4]:
            return result.fail("the QKV projection has no static (..., 3C) shape")
        return result

    def rewrite(self, op, qkv, packed, **_):
        batch, tokens, _, heads, dim = static_shape(packed)
        channels = heads * dim
        parts = op.Split(qkv, initializer(op, np.array([channels] * 3, np.int64), packed, "qkv_sizes"), axis=-1,
                         _outputs=3)
        head_shape = initializer(op, np.array([batch, tokens, heads, dim], np.int64), packed, "head_shape")
        return tuple(op.Transpose(op.Reshape(p, head_shape), perm=[0, 2, 1, 3]) for p in parts)


RULES = [_SplitQKV.rule("split"), _SplitQKV.rule("gather")]


def rewrite(model: ir.Model) -> tuple[int, str]:
    absent = "no rank-5 packed QKV split (Reshape (B, N, 3, h, d) -> Transpose) in the graph"
    # a multi-output pattern is matched by onnxscript's generic (slow) matcher: look for its anchor first
    if not any(n.op_type == "Transpose" and attr_ints(n, "perm") == _PERM for n in model.graph.all_nodes()):
        return 0, absent
    return apply_patterns(model, RULES, absent)
