"""Relative position bias and shift mask folded into one additive constant, at rank 4.

A shifted-window block adds two constants to its logits, the second through a rank-5 view so
that window w of every image meets mask[w]::

    s (B*nW, h, N, N) --Add rel_bias (1, h, N, N)--> --Reshape--> (B, nW, h, N, N)
        --Add mask (1, nW, 1, N, N)--> --Reshape--> (B*nW, h, N, N)

The two constants sum to one (nW, h, N, N) tensor ahead of time, and folding the window axis into
the head axis keeps the broadcast at rank 4 (one Add, no rank-5 tensor)::

    s --Reshape--> (B, nW*h, N, N) --Add bias (1, nW*h, N, N)--> --Reshape--> (B*nW, h, N, N)

Also folds two constant Adds in a row (``(s + c1) + c2`` -> ``s + (c1 + c2)``) where the summed
constant broadcasts to no larger a shape. The gather of the bias from its table is a constant
subgraph; :mod:`fold_constants` evaluates it.

Numerics: c1 + c2 is summed once in fp32 instead of per element at run time; rounding only
(tests: 1e-5).
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite.matching import apply_patterns, const_array, initializer, static_shape

NAME = "fold_attention_bias"


class _WindowMask(orp.RewriteRuleClassBase):
    """``Reshape5(s [+ bias]) + mask -> Reshape4`` -> ``Reshape4(Reshape(s, (B, nW*h, N, N)) + (bias + mask))``."""

    def __init__(self, with_bias: bool):
        super().__init__(f"WindowMask[bias={with_bias}]")
        self.with_bias = with_bias

    def pattern(self, op, s, bias, shape5, mask, shape4):
        logits = op.Add(s, bias) if self.with_bias else s
        grouped = op.Reshape(logits, shape5, _allow_other_attributes=True, _outputs=["grouped"])
        return op.Reshape(op.Add(grouped, mask), shape4, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context, s, mask, grouped, out, bias=None, **_):
        result = orp.MatchResult()
        scores, view = static_shape(s), static_shape(grouped)
        if scores is None or view is None or static_shape(out) != scores:
            return result.fail("the windowed logits have no static shape")
        if len(view) == 4:
            return result.fail(f"the bias is already one constant added at rank 4 (view {view})")
        if len(scores) != 4 or len(view) != 5:
            return result.fail(f"the logits {scores} are not viewed as (B, nW, h, N, N) ({view})")
        _, n_windows, heads, nq, nk = view
        if (heads, nq, nk) != scores[1:]:
            return result.fail(f"the view {view} does not split the batch axis of {scores} into windows")
        m = const_array(mask)
        if m is None:
            return result.fail("the window mask is not a constant")
        if not _broadcasts(m.shape, (1, n_windows, heads, nq, nk)):
            return result.fail(f"the mask {m.shape} does not broadcast to (1, nW, h, N, N)")
        if bias is not None:
            b = const_array(bias)
            if b is None:
                return result.fail("the relative position bias is not a constant")
            if not _broadcasts(b.shape, (1, heads, nq, nk)):
                return result.fail(f"the bias {b.shape} does not broadcast to (1, h, N, N)")
        return result

    def rewrite(self, op, s, mask, shape4, grouped, bias=None, **_):
        _, n_windows, heads, nq, nk = static_shape(grouped)
        total = np.broadcast_to(const_array(mask), (1, n_windows, heads, nq, nk)).astype(np.float32)
        if bias is not None:
            total = total + np.broadcast_to(const_array(bias).reshape(-1, heads, nq, nk), (1, 1, heads, nq, nk))
        total = total.reshape(1, n_windows * heads, nq, nk).astype(const_array(mask).dtype)
        folded_shape = initializer(op, np.array([-1, n_windows * heads, nq, nk], np.int64), grouped, "folded_shape")
        folded = op.Add(op.Reshape(s, folded_shape), initializer(op, total, grouped, "attn_bias"))
        return op.Reshape(folded, shape4)


class _ConstantAdds(orp.RewriteRuleClassBase):
    """``(s + c1) + c2`` -> ``s + (c1 + c2)``."""

    def pattern(self, op, s, c1, c2):
        return op.Add(op.Add(s, c1, _outputs=["first"]), c2, _outputs=["out"])

    def check(self, context, s, c1, c2, first, out, **_):
        result = orp.MatchResult()
        a, b = const_array(c1), const_array(c2)
        if a is None or b is None or const_array(s) is not None:
            return result.fail("not two constant Adds on a computed tensor")
        target = static_shape(s)
        if target is None:
            return result.fail("the biased tensor has no static shape")
        try:
            summed = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            return result.fail(f"the constants {a.shape} and {b.shape} do not broadcast together")
        if not _broadcasts(summed, target):
            return result.fail(f"the summed constant {summed} would enlarge {target}")
        return result

    def rewrite(self, op, s, c1, c2, first, **_):
        total = (const_array(c1) + const_array(c2)).astype(const_array(c1).dtype)
        return op.Add(s, initializer(op, total, first, "summed_bias"))


def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """True when ``shape`` broadcasts to ``target`` without growing it."""
    if len(shape) > len(target):
        return False
    return all(d in (1, t) for d, t in zip(shape[::-1], target[::-1]))


RULES = [_WindowMask.rule(True), _WindowMask.rule(False), _ConstantAdds.rule()]


def rewrite(model: ir.Model) -> tuple[int, str]:
    return apply_patterns(model, RULES, "no windowed mask add through a rank-5 view and no two constant Adds in a row "
                                        "(the bias is already one constant)")
