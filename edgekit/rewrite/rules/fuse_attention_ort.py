"""Self-attention with its packed QKV projection -> one ``com.microsoft.Attention`` (ONNX Runtime).

The whole block from the QKV projection to the head merge, as the zoo and timm (after
``split_qkv_heads``) export it::

    x --Gemm | MatMul [+ b]--> qkv (B, N, 3C) or (B*N, 3C) --Split(-1)--> q, k, v
       q --Reshape (B, N, h, d)--Transpose(0,2,1,3)-->  k --...--Transpose(0,2,3,1)-->  v --...-->
       softmax(q k^T * scale [+ bias]) @ v  (see edgekit.rewrite.attention)
       --Transpose(0,2,1,3)--Reshape--> (B, N, C)

    =>  Attention(x (B, N, C), W (C, 3C), b (3C), attention_bias (B|1, h|1, N, N), num_heads=h, scale=s)
        --Reshape--> (the block's output shape)

Why this op: ONNX Runtime's CPU kernel runs the projection and every head's two small GEMMs and
softmax in one parallel loop, without the transposes, the Split and the materialized head views.
Measured on this CPU (scripts/bench_rewrites.py, one Swin window block, fp32): faster than the
decomposed block at every stage; ``com.microsoft.MultiHeadAttention`` (q, k, v given separately)
was no faster than the decomposed form, and the opset-23 ``Attention`` op needs an opset-23 model.
A per-window bias (Swin's shifted windows) is tiled over the batch, so the batch must be static.

Numerics: the same fp32 math in another order (tests: 1e-5).
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite import attention
from edgekit.rewrite.matching import apply_patterns, attr_int, const_array, const_ints, initializer, static_shape

NAME = "fuse_attention_ort"


class _Attention(orp.RewriteRuleClassBase):
    def __init__(self, scale_form: str, bias_form: str):
        super().__init__(f"OrtAttention[{scale_form},{bias_form}]")
        self.scale_form, self.bias_form = scale_form, bias_form

    def pattern(self, op, x2, x3, w, b, proj_shape, sizes, q_shape, k_shape, v_shape, scale, bias, group_shape,
                head_shape, out_shape):
        proj = orp.OrValue([
            op.Reshape(op.Gemm(x2, w, b, _allow_other_attributes=True, _outputs=["gemm"]), proj_shape),
            op.Gemm(x2, w, b, _allow_other_attributes=True, _outputs=["gemm"]),  # Split of the 2-D (B*N, 3C)
            op.Add(op.MatMul(x3, w), b),
            op.Add(b, op.MatMul(x3, w)),  # the exporter writes Linear's bias first
            op.MatMul(x3, w),
        ], tag_var="projection")
        qp, kp, vp = op.Split(proj, sizes, _allow_other_attributes=True, _outputs=["qp", "kp", "vp"])
        q = op.Transpose(op.Reshape(qp, q_shape, _allow_other_attributes=True), perm=[0, 2, 1, 3], _outputs=["q"])
        k_t = op.Transpose(op.Reshape(kp, k_shape, _allow_other_attributes=True), perm=[0, 2, 3, 1])
        v = op.Transpose(op.Reshape(vp, v_shape, _allow_other_attributes=True), perm=[0, 2, 1, 3], _outputs=["v"])
        out = attention.core(op, q, k_t, v, scale, bias, group_shape, head_shape, self.scale_form, self.bias_form)
        return op.Reshape(op.Transpose(out, perm=[0, 2, 1, 3]), out_shape, _allow_other_attributes=True)

    def check(self, context, w, sizes, q, v, qp, scale, probs, projection, x2=None, x3=None, b=None, gemm=None,
              bias=None, grouped=None, **_):
        result = orp.MatchResult()
        shape = attention.check_core(result, q, scale, probs, self.scale_form)
        if shape is None:
            return result
        batch, heads, tokens, dim = shape
        channels = heads * dim
        if static_shape(v) != shape:
            return result.fail(f"v {static_shape(v)} and q {shape} differ: not self-attention over one sequence")
        split = qp.producer()
        if attr_int(split, "axis", 0) not in (-1, 2) or const_ints(sizes) != [channels] * 3:
            return result.fail(f"the QKV Split is not three equal parts ({const_ints(sizes)}) of the channel axis")
        weight = const_array(w)
        if weight is None or weight.ndim != 2:
            return result.fail("the QKV projection weight is not a constant matrix")
        if b is not None and const_array(b) is None:
            return result.fail("the QKV projection bias is not a constant")
        if gemm is not None:
            node = gemm.producer()
            if (attr_int(node, "transA", 0) or node.attributes.get_float("alpha", 1.0) != 1.0
                    or node.attributes.get_float("beta", 1.0) != 1.0):
                return result.fail("the QKV Gemm transposes its input or scales")
            if static_shape(x2) != (batch * tokens, channels):
                return result.fail(f"the QKV Gemm input {static_shape(x2)} is not (B*N, C)")
        elif static_shape(x3) != (batch, tokens, channels):
            return result.fail(f"the QKV MatMul input {static_shape(x3)} is not (B, N, C) = {(batch, tokens, channels)}")
        if self.bias_form != "none":
            per_window = attention.bias_per_window(bias, grouped, heads, tokens, tokens)
            if per_window is None:
                return result.fail("the attention bias is not a constant broadcastable to (B, heads, N, N)")
            if batch % per_window.shape[0]:
                return result.fail(f"{batch} windows are not a multiple of the bias' {per_window.shape[0]}")
        return result

    def rewrite(self, op, w, q, scale, qp, out_shape, projection, x2=None, x3=None, b=None, gemm=None, bias=None,
                grouped=None, **_):
        batch, heads, tokens, dim = static_shape(q)
        channels = heads * dim
        weight = const_array(w)
        if gemm is not None and attr_int(gemm.producer(), "transB", 0):
            weight = weight.T  # Gemm's (3C, C) -> Attention's (C, 3C)
        qkv_bias = const_array(b).reshape(-1) if b is not None else np.zeros(3 * channels, weight.dtype)
        if x3 is None:
            x3 = op.Reshape(x2, initializer(op, np.array([batch, tokens, channels], np.int64), qp, "attn_input_shape"))
        attn_bias = None
        if self.bias_form != "none":
            per_window = attention.bias_per_window(bias, grouped, heads, tokens, tokens)
            if per_window.shape[0] not in (1, batch):  # windows are batch-major: window b meets bias[b % nW]
                per_window = np.tile(per_window, (batch // per_window.shape[0], 1, 1, 1))
            attn_bias = initializer(op, per_window.astype(np.float32), qp, "attention_bias")
        fused = op.Attention(x3, initializer(op, np.ascontiguousarray(weight), qp, "attn_qkv_weight"),
                             initializer(op, qkv_bias.astype(weight.dtype), qp, "attn_qkv_bias"), None, None, attn_bias,
                             num_heads=heads, scale=attention.scale_value(scale, self.scale_form),
                             _domain="com.microsoft")
        fused.shape = ir.Shape([batch, tokens, channels])
        fused.dtype = q.dtype
        return op.Reshape(fused, out_shape)


RULES = [_Attention.rule(s, b) for s, b in attention.VARIANTS]


def rewrite(model: ir.Model) -> tuple[int, str]:
    return apply_patterns(model, RULES, "no self-attention block fed by one packed QKV projection "
                                        "(separate q / kv projections, as spatial-reduction attention, stay decomposed)")
