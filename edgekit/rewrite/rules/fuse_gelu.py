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

import itertools
import math
from functools import partial

import onnx_ir as ir
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite.matching import apply_patterns, const_scalar, constants_second

NAME = "fuse_gelu"
_ONNX_GELU_OPSET = 20
_TOL = 1e-4  # matching tolerance on the exported fp32 constants (0.044715 is stored as 0.044714998)


class _Gelu(orp.RewriteRuleClassBase):
    """One operand order of one GELU form (constants are moved second first, see :func:`rewrite`)."""

    def __init__(self, kind: str, tail: str, cube: str, inner_first: bool, domain: str):
        super().__init__(f"Gelu[{kind},{tail},{cube},{inner_first}]")
        self.kind, self.tail, self.cube, self.inner_first, self.domain = kind, tail, cube, inner_first, domain

    def pattern(self, op, x, c1, c2, c3, one, half):
        if self.kind == "erf":
            phi = op.Add(op.Erf(orp.OrValue([op.Div(x, c1), op.Mul(x, c1)], tag_var="erf_arg")), one)
        else:
            cube = {"x(xx)": lambda: op.Mul(x, op.Mul(x, x)), "(xx)x": lambda: op.Mul(op.Mul(x, x), x),
                    "pow": lambda: op.Pow(x, c3)}[self.cube]()
            scaled = op.Mul(cube, c2)
            inner = op.Add(scaled, x) if self.inner_first else op.Add(x, scaled)
            phi = op.Add(op.Tanh(op.Mul(inner, c1)), one)
        return {
            "(x.phi).half": lambda: op.Mul(op.Mul(x, phi), half),
            "(phi.x).half": lambda: op.Mul(op.Mul(phi, x), half),
            "(x.half).phi": lambda: op.Mul(op.Mul(x, half), phi),
            "phi.(x.half)": lambda: op.Mul(phi, op.Mul(x, half)),
            "x.(phi.half)": lambda: op.Mul(x, op.Mul(phi, half)),
            "(phi.half).x": lambda: op.Mul(op.Mul(phi, half), x),
        }[self.tail]()

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


_TAILS = ("(x.phi).half", "(phi.x).half", "(x.half).phi", "phi.(x.half)", "x.(phi.half)", "(phi.half).x")


def rules(domain: str) -> list[orp.RewriteRule]:
    """Every operand order, listed (onnxscript's commute() would multiply the tanh form 2^8-fold)."""
    erf = [_Gelu.rule("erf", tail, "", False, domain) for tail in _TAILS]
    tanh = [_Gelu.rule("tanh", tail, cube, inner_first, domain) for tail, cube, inner_first
            in itertools.product(_TAILS, ("x(xx)", "(xx)x", "pow"), (False, True))]
    return erf + tanh


def rewrite(model: ir.Model, domain: str = "com.microsoft") -> tuple[int, str]:
    absent = "no decomposed GELU (Erf or Tanh form) in the graph"
    if not any(n.op_type in ("Erf", "Tanh") for n in model.graph.all_nodes()):
        return 0, absent
    constants_second(model)
    return apply_patterns(model, rules(domain), absent)


def for_domain(domain: str):
    """``rewrite`` bound to a target's domain ("com.microsoft" or "" for opset-20 ONNX Gelu)."""
    return partial(rewrite, domain=domain)
