"""Decomposed LayerNorm over the last axis -> one ``LayerNormalization`` (opset 17).

A LayerNorm written out by hand (or exported below opset 17) is nine nodes::

    x --ReduceMean(-1)--> mean;  d = x - mean
    d --Pow 2 | d*d--> ReduceMean(-1) --Add eps--> Sqrt --> std
    d / std  |  d * Reciprocal(std)  --Mul gamma--> [--Add beta-->] y

One node instead runs a single fused kernel in ONNX Runtime and OpenVINO, and TensorRT keeps it
in fp32 as a unit (its fp16 LayerNorm overflow is the decomposed form's ``Pow``).
Only reductions over the last axis match (``axis=-1``); a channel-first LayerNorm2d (mean over
axis 1 of NCHW) is not a LayerNormalization and is left alone.

Numerics: same math, one-pass kernel; fp32 differences are rounding only (tests: 1e-5).
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite.matching import (apply_patterns, attr_int, attr_ints, const_array, const_ints, const_scalar,
                                     initializer)

NAME = "fuse_layer_norm"


class _LayerNorm(orp.RewriteRuleClassBase):
    """The normalization and its scale; a following bias Add is taken by :class:`_LayerNormBias`."""

    def pattern(self, op, x, two, eps, scale):
        mean = op.ReduceMean(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["mean"])
        d = op.Sub(x, mean)
        sq = orp.OrValue([op.Pow(d, two), op.Mul(d, d)])
        var = op.ReduceMean(sq, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["var"])
        std = op.Sqrt(op.Add(var, eps))
        return op.Mul(orp.OrValue([op.Div(d, std), op.Mul(d, op.Reciprocal(std))]), scale)

    def check(self, context, x, two, eps, mean, var, scale, **_):
        result = orp.MatchResult()
        if x.dtype not in (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE):
            return result.fail("input is not a float tensor")
        rank = len(x.shape) if x.shape is not None else None
        for reduce in (mean.producer(), var.producer()):
            axes = _axes(reduce)
            if axes is None or rank is None or [a % rank for a in axes] != [rank - 1]:
                return result.fail(f"{reduce.name or 'ReduceMean'} reduces axes {axes}, not only the last one")
            if attr_int(reduce, "keepdims", 1) != 1:
                return result.fail("ReduceMean drops the reduced axis")
        if two is not None and const_scalar(two) != 2.0:
            return result.fail("Pow exponent is not the constant 2")
        if const_scalar(eps) is None:
            return result.fail("epsilon is not a constant scalar")
        return _per_channel(result, x, scale, "scale")

    def rewrite(self, op, x, eps, mean, scale, **_):
        channels = x.shape[len(x.shape) - 1]
        dtype = x.dtype.numpy()
        gamma = const_array(scale).reshape(-1).astype(dtype)
        return op.LayerNormalization(x, initializer(op, gamma, mean, "ln_scale"),
                                     initializer(op, np.zeros(channels, dtype), mean, "ln_bias"),
                                     axis=-1, epsilon=const_scalar(eps))


class _LayerNormBias(orp.RewriteRuleClassBase):
    """``LayerNormalization(x, g, b0) + beta`` -> ``LayerNormalization(x, g, b0 + beta)``."""

    def pattern(self, op, x, scale, bias, beta):
        return op.Add(op.LayerNormalization(x, scale, bias, _allow_other_attributes=True, _outputs=["ln"]), beta)

    def check(self, context, x, scale, bias, beta, ln, **_):
        result = orp.MatchResult()
        node = ln.producer()
        if attr_int(node, "axis", -1) % len(x.shape) != len(x.shape) - 1 or len(node.outputs) > 1:
            return result.fail("the LayerNormalization does not normalize only the last axis")
        if const_array(bias) is None:
            return result.fail("the LayerNormalization bias is not a constant")
        return _per_channel(result, x, beta, "bias")

    def rewrite(self, op, x, scale, bias, beta, ln, **_):
        node = ln.producer()
        total = const_array(bias).reshape(-1) + const_array(beta).reshape(-1).astype(const_array(bias).dtype)
        return op.LayerNormalization(x, scale, initializer(op, total, ln, "ln_bias"), **node.attributes)


def _per_channel(result: orp.MatchResult, x: ir.Value, value: ir.Value, name: str) -> orp.MatchResult:
    channels = x.shape[len(x.shape) - 1] if x.shape is not None else None
    if not isinstance(channels, int):
        return result.fail("the normalized (last) axis has no static size")
    arr = const_array(value)
    if arr is None:
        return result.fail(f"LayerNorm {name} is not a constant")
    if arr.size != channels or arr.shape[-1:] != (channels,):
        return result.fail(f"LayerNorm {name} of shape {arr.shape} is not per-channel ({channels})")
    return result


def _axes(node: ir.Node) -> list[int] | None:
    """ReduceMean's axes: an attribute up to opset 17, the second input from opset 18."""
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        return const_ints(node.inputs[1])
    return attr_ints(node, "axes")


RULES = [_LayerNorm.rule(), _LayerNormBias.rule()]


def rewrite(model: ir.Model) -> tuple[int, str]:
    return apply_patterns(model, orp.RewriteRuleSet(RULES, commute=True),
                          "no decomposed LayerNorm (ReduceMean-Sub-Pow-ReduceMean-Add-Sqrt-Div) in the graph")
