"""A per-window attention bias added through a (B, nW*h, N, N) view -> one plain 4-D Add (OpenVINO).

The zoo's Swin (and ``fold_attention_bias``) add the shifted-window bias at rank 4 by folding the
window axis into the head axis::

    s (B*nW, h, N, N) --Reshape (-1, nW*h, N, N)--> --Add bias (1, nW*h, N, N)--> --Reshape (-1, h, N, N)--> Softmax

OpenVINO 2026.4's ``SDPAFusion`` takes that bias for an attention mask of the wrong shape and its
shape inference throws while *converting* the model ("Attention mask input shape not compatible"):
such a model cannot be built for OpenVINO at all. With a static batch the bias can be laid out per
window of the whole batch, (B*nW, h, N, N), and added without a view, which OpenVINO fuses::

    s --Add bias (B*nW, h, N, N)--> Softmax

Costs the bias B times in memory (Swin-T stage 1: 1.8 MB per shifted block at batch 1).
Numerics: the same additions, bit-identical.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite.matching import apply_patterns, const_array, initializer, static_shape

NAME = "expand_window_bias"


class _ExpandWindowBias(orp.RewriteRuleClassBase):
    def pattern(self, op, s, group_shape, bias, head_shape):
        grouped = op.Reshape(s, group_shape, _allow_other_attributes=True, _outputs=["grouped"])
        return op.Reshape(op.Add(grouped, bias), head_shape, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context, s, bias, grouped, out, **_):
        result = orp.MatchResult()
        scores, view = static_shape(s), static_shape(grouped)
        if scores is None or view is None or static_shape(out) != scores:
            return result.fail("the logits have no static shape (a dynamic batch cannot be laid out per window)")
        if len(scores) != 4 or len(view) != 4 or view[1] % scores[1] or view[2:] != scores[2:]:
            return result.fail(f"the logits {scores} are not viewed as (B, nW*h, N, N) ({view})")
        if scores[0] % (view[1] // scores[1]):
            return result.fail(f"{scores[0]} windows are not a multiple of the bias' {view[1] // scores[1]}")
        b = const_array(bias)
        if b is None or b.size != view[1] * view[2] * view[3]:
            return result.fail("the bias is not one constant (1, nW*h, N, N)")
        return result

    def rewrite(self, op, s, bias, grouped, **_):
        scores, view = static_shape(s), static_shape(grouped)
        heads, n_windows = scores[1], view[1] // scores[1]
        per_window = const_array(bias).reshape(n_windows, heads, scores[2], scores[3])
        tiled = np.tile(per_window, (scores[0] // n_windows, 1, 1, 1))  # window b of the batch meets bias[b % nW]
        return op.Add(s, initializer(op, tiled, grouped, "window_bias"))


RULES = [_ExpandWindowBias.rule()]


def rewrite(model: ir.Model) -> tuple[int, str]:
    return apply_patterns(model, RULES, "no per-window bias added through a (B, nW*h, N, N) view")
