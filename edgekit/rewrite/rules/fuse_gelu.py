"""Erf-based or tanh GELU -> one node, in the domain the target has one.

The exporter writes ``nn.GELU`` as five nodes (erf) or nine (tanh)::

    erf:   x --Div sqrt(2) | Mul 1/sqrt(2)--> Erf --Add 1--> phi;  y = x * phi * 0.5
    tanh:  x --x*x*x | Pow 3--> Mul 0.044715 --Add x--> Mul sqrt(2/pi) --> Tanh --Add 1--> phi;  y = x * phi * 0.5

Where the output node lives depends on the target (``domain``):

- ``"com.microsoft"`` (ONNX Runtime): ``Gelu`` (erf) / ``FastGelu`` (tanh), any opset;
- ``""`` (ONNX): ``Gelu`` with ``approximate`` — opset 20 and later only; at opset 17 the check says so.

Numerics: ORT's Gelu computes the same erf expression (tests: 1e-5); FastGelu is the same tanh
formula (1e-5).
"""
from __future__ import annotations

import math
from functools import partial

import onnx_ir as ir
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite.matching import apply_patterns, const_scalar

NAME = "fuse_gelu"
_ONNX_GELU_OPSET = 20
_TOL = 1e-4  # matching tolerance on the exported fp32 constants (0.044715 is stored as 0.044714998)


class _Gelu(orp.RewriteRuleClassBase):
    def __init__(self, kind: str, tail: str, domain: str):
        super().__init__(f"Gelu[{kind},{tail}]")
        self.kind, self.tail, self.domain = kind, tail, domain

    def pattern(self, op, x, c1, c2, c3, one, half):
        if self.kind == "erf":
            phi = op.Add(op.Erf(orp.OrValue([op.Div(x, c1), op.Mul(x, c1)], tag_var="erf_arg")), one)
        else:
            cube = orp.OrValue([op.Mul(x, op.Mul(x, x)), op.Pow(x, c3)])  # commute=True covers (x*x)*x
            phi = op.Add(op.Tanh(op.Mul(op.Add(x, op.Mul(cube, c2)), c1)), one)
        if self.tail == "x_phi_half":
            return op.Mul(op.Mul(x, phi), half)
        if self.tail == "x_half_phi":
            return op.Mul(op.Mul(x, half), phi)
        return op.Mul(x, op.Mul(phi, half))

    def check(self, context, x, c1, c2, c3, one, half, erf_arg=None, **_):
        result = orp.MatchResult()
        if self.domain == "" and context.model.opset_imports.get("", 0) < _ONNX_GELU_OPSET:
            return result.fail(f"ONNX Gelu needs opset {_ONNX_GELU_OPSET}; the model is opset "
                               f"{context.model.opset_imports.get('', 0)} and this target has no contrib Gelu")
        expected = {"one": (one, 1.0), "half": (half, 0.5)}
        if self.kind == "erf":
            expected["sqrt2"] = (c1, math.sqrt(2.0) if erf_arg == 0 else 1.0 / math.sqrt(2.0))
        else:
            expected["sqrt(2/pi)"] = (c1, math.sqrt(2.0 / math.pi))
            expected["0.044715"] = (c2, 0.044715)
            if c3 is not None:
                expected["3"] = (c3, 3.0)
        for what, (value, target) in expected.items():
            got = const_scalar(value)
            if got is None or abs(got - target) > _TOL * max(1.0, abs(target)):
                return result.fail(f"GELU constant {what} is {got}, not {target:.6g}")
        return result

    def rewrite(self, op, x, **_):
        if self.domain == "com.microsoft":
            return op.Gelu(x, _domain="com.microsoft") if self.kind == "erf" else op.FastGelu(x, _domain="com.microsoft")
        return op.Gelu(x, approximate="none" if self.kind == "erf" else "tanh")


def rules(domain: str) -> list[orp.RewriteRule]:
    return [_Gelu.rule(kind, tail, domain) for kind in ("erf", "tanh")
            for tail in ("x_phi_half", "x_half_phi", "phi_half")]


def rewrite(model: ir.Model, domain: str = "com.microsoft") -> tuple[int, str]:
    return apply_patterns(model, orp.RewriteRuleSet(rules(domain), commute=True),
                          "no decomposed GELU (Erf or Tanh form) in the graph")


def for_domain(domain: str):
    """``rewrite`` bound to a target's domain ("com.microsoft" or "" for opset-20 ONNX Gelu)."""
    return partial(rewrite, domain=domain)
