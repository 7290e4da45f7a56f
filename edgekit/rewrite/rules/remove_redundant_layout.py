"""Redundant Transpose / Reshape pairs and no-op layout nodes removed.

Exports leave layout glue that computes nothing: two Transposes in a row (one or none does the
same), a Reshape of a Reshape, a Reshape to the shape the tensor already has, a Slice over the
whole axis, a Pad by zero (timm's Swin pads "to a multiple of the window" even when it already is)::

    Transpose(p1) -> Transpose(p2)   =>  Transpose(p2 . p1)  or nothing
    Reshape(s1)   -> Reshape(s2)     =>  Reshape(s2)
    Reshape(x, shape(x)) | Slice(x, 0:dim) | Pad(x, 0)   =>  x

Each one is a full copy of the tensor in most runtimes. The first three come from onnxscript's
maintained rules; the static no-ops are checked against inferred shapes here.

Numerics: pure data movement removed, bit-identical.
"""
from __future__ import annotations

import onnx_ir as ir
from onnxscript.rewriter import pattern as orp
from onnxscript.rewriter.rules.common import no_op_transpose_rule, reshape_reshape_rule, transpose_transpose_rule

from edgekit.rewrite.matching import apply_patterns, const_ints, static_shape

NAME = "remove_redundant_layout"


class _IdentityReshape(orp.RewriteRuleClassBase):
    def pattern(self, op, x, shape):
        return op.Reshape(x, shape, _allow_other_attributes=True, _outputs=["y"])

    def check(self, context, x, shape, y, **_):
        result = orp.MatchResult()
        before, after = static_shape(x), static_shape(y)
        if before is None or after is None:
            return result.fail("Reshape input or output shape is not static")
        if before != after:
            return result.fail(f"Reshape {before} -> {after} changes the shape")
        return result

    def rewrite(self, op, x, **_):
        return op.Identity(x)


class _FullSlice(orp.RewriteRuleClassBase):
    """A Slice whose output has its input's static shape (and unit steps) copies everything."""

    def pattern(self, op, x):
        return op.Slice(x, _allow_other_inputs=True, _outputs=["y"])

    def check(self, context, x, y, **_):
        result = orp.MatchResult()
        node = y.producer()
        steps = const_ints(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None else None
        if steps is not None and any(s != 1 for s in steps):
            return result.fail(f"Slice steps {steps} are not all 1")
        before, after = static_shape(x), static_shape(y)
        if before is None or before != after:
            return result.fail(f"Slice {before} -> {after} drops elements")
        return result

    def rewrite(self, op, x, **_):
        return op.Identity(x)


class _ZeroPad(orp.RewriteRuleClassBase):
    def pattern(self, op, x, pads):
        return op.Pad(x, pads, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["y"])

    def check(self, context, x, pads, y, **_):
        result = orp.MatchResult()
        amounts = const_ints(pads)
        if amounts is None or any(amounts):
            return result.fail(f"Pad amounts {amounts} are not all zero")
        return result

    def rewrite(self, op, x, **_):
        return op.Identity(x)


RULES = [transpose_transpose_rule, no_op_transpose_rule, reshape_reshape_rule, _IdentityReshape.rule(),
         _FullSlice.rule(), _ZeroPad.rule()]


def rewrite(model: ir.Model) -> tuple[int, str]:
    count, why = apply_patterns(model, RULES, "no redundant Transpose/Reshape pair or no-op Reshape/Slice/Pad found",
                                report_checks=False)
    if count:
        from onnx_ir.passes.common import IdentityEliminationPass

        IdentityEliminationPass()(model)
    return count, why
