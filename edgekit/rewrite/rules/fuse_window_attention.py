"""Windowed softmax attention with an additive bias -> one ``edgekit::WindowAttention`` node.

The core of a (shifted-)window block, in any of the forms of :mod:`edgekit.rewrite.attention`::

    q (B*nW, h, N, d), kT (.., d, N), v --> softmax(q kT * scale + bias) @ v      bias: (1|nW, h, N, N)
    =>  edgekit::WindowAttention(q, k, v, bias (nW, h, N, N), scale=s, num_heads=h)

TensorRT's ONNX parser maps the node to the registered plugin (TensorRT >= 10.9: one fused
ahead-of-time kernel, fp32 softmax inside fp16 engines; on older TensorRT the build inlines the
node's function body instead); ONNX Runtime runs its model-local function body; OpenVINO inlines
it. This rule catches exports the torch-level swap (``edgekit.rewrite.swaps.window_attention``)
did not produce directly. Attention without a bias is left alone: it is not windowed attention,
and TensorRT fuses plain attention itself.

Numerics: the plugin's reference is this exact math in fp32 (tests: 1e-5 through the function body).
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite import attention
from edgekit.rewrite.matching import apply_patterns, attr_ints, initializer, static_shape

NAME = "fuse_window_attention"
DOMAIN = "edgekit"


def key_from_transposed(k_t: ir.Value) -> tuple[ir.Value, list[int]] | None:
    """(Transpose input, its perm) when kT is k (B, h, N, d) or k (B, N, h, d) transposed onto (B, h, d, N)."""
    node = k_t.producer()
    if node is None or node.op_type != "Transpose" or node.domain not in ("", "ai.onnx"):
        return None
    perm = attr_ints(node, "perm")
    return (node.inputs[0], perm) if perm in ([0, 1, 3, 2], [0, 2, 3, 1]) else None


class _WindowAttention(orp.RewriteRuleClassBase):
    def __init__(self, scale_form: str, bias_form: str):
        super().__init__(f"WindowAttention[{scale_form},{bias_form}]")
        self.scale_form, self.bias_form = scale_form, bias_form

    def pattern(self, op, q, k_t, v, scale, bias, group_shape, head_shape):
        return attention.core(op, q, k_t, v, scale, bias, group_shape, head_shape, self.scale_form, self.bias_form)

    def check(self, context, q, k_t, v, scale, probs, bias=None, grouped=None, **_):
        result = orp.MatchResult()
        shape = attention.check_core(result, q, scale, probs, self.scale_form)
        if shape is None:
            return result
        batch, heads, tokens, dim = shape
        if static_shape(v) != shape or static_shape(k_t) != (batch, heads, dim, tokens):
            return result.fail(f"q {shape}, k^T {static_shape(k_t)}, v {static_shape(v)}: not one window's q, k, v")
        if key_from_transposed(k_t) is None:
            return result.fail("k^T is not a Transpose of k")
        per_window = attention.bias_per_window(bias, grouped, heads, tokens, tokens)
        if per_window is None:
            return result.fail("the bias is not a constant broadcastable to (nW, heads, N, N)")
        if batch % per_window.shape[0]:
            return result.fail(f"{batch} windows are not a multiple of the bias' {per_window.shape[0]}")
        return result

    def rewrite(self, op, q, k_t, v, scale, probs, bias=None, grouped=None, **_):
        _, heads, tokens, _ = static_shape(q)
        source, perm = key_from_transposed(k_t)
        k = source if perm == [0, 1, 3, 2] else op.Transpose(source, perm=[0, 2, 1, 3])
        per_window = attention.bias_per_window(bias, grouped, heads, tokens, tokens).astype(np.float32)
        out = op.WindowAttention(q, k, v, initializer(op, per_window, probs, "window_bias"),
                                 scale=float(attention.scale_value(scale, self.scale_form)), num_heads=heads,
                                 _domain=DOMAIN)
        out.shape, out.dtype = ir.Shape(static_shape(q)), q.dtype
        return out


RULES = [_WindowAttention.rule(s, b) for s, b in attention.VARIANTS if b != "none"]


def rewrite(model: ir.Model) -> tuple[int, str]:
    return apply_patterns(model, RULES, "no softmax attention with an additive bias (plain attention is left to "
                                        "TensorRT's own fusion)")
