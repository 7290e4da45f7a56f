"""Running onnxscript pattern rules with a count and, when nothing applied, the reason why.

Every ONNX rule of edgekit is an ``onnxscript.rewriter`` RewriteRuleSet (pattern, check, replacement)
or an onnx-ir pass; :func:`apply_patterns` runs a rule set in place and returns how many subgraphs it
rewrote. When it rewrote none, the set is run again with onnxscript's MatchingTracer (which changes
nothing) and the best near-miss is reported: the failing check's own message, so that
``edgekit export --explain`` can say *why* a rule that could have applied did not.

Also here: the few value helpers every rule needs (static shapes, constant arrays).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern as orp
from onnxscript.rewriter._basics import MatchingTracer, MatchStatus
from onnxscript.rewriter._pattern_ir import NodeOutputPattern

RewriteRule = orp.RewriteRule


def apply_patterns(model: ir.Model, rules: Sequence[RewriteRule] | orp.RewriteRuleSet,
                   absent: str, report_checks: bool = True) -> tuple[int, str]:
    """Apply ``rules`` to ``model`` in place -> (rewrites made, why none was made or "").

    ``absent`` is the reason given when no match failed only on its check. ``report_checks=False``
    always gives ``absent`` (for clean-up rules whose checks fail on every ordinary node).
    """
    rule_set = rules if isinstance(rules, orp.RewriteRuleSet) else orp.RewriteRuleSet(list(rules))
    present = op_types(model)
    # every rule needs an op the model lacks: none can match, nor create what another could (a rule's output
    # may feed a later rule of the set, so the set runs whole as soon as one rule could match)
    if not any(needed_ops(r) <= present for r in rule_set.rules):
        return 0, absent
    count = rule_set.apply_to_model(model)
    if count:
        return count, ""
    return 0, why_not(model, rule_set, absent) if report_checks else absent


def op_types(model: ir.Model) -> set[tuple[str, str]]:
    """(domain, op_type) of every node of the model, its subgraphs and functions; "ai.onnx" written ""."""
    nodes = [*model.graph.all_nodes(), *(n for f in model.functions.values() for n in f.all_nodes())]
    return {("" if n.domain == "ai.onnx" else n.domain, n.op_type) for n in nodes}


def needed_ops(rule: RewriteRule) -> set[tuple[str, str]]:
    """(domain, op_type) of the pattern nodes every match contains: those reached from the pattern's outputs
    through plain node inputs (an alternative, ``OrValue``, is not followed: either branch may match).

    Finding one missing from a model is a cheap, exact "cannot match": onnxscript otherwise tries every node
    of the graph, and runs the whole set again with a tracer to explain the miss (on timm MaxViT-pico, 1003
    nodes: 0.3-0.9 s per rule that had nothing to match)."""
    ops, seen = set(), set()
    stack = [v.producer() for v in rule._target_pattern.outputs]  # onnxscript's GraphPattern of the rule
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        op = node.op_identifier()  # None when the domain or op type is itself a pattern
        if op is not None:
            ops.add(("" if op[0] == "ai.onnx" else op[0], op[1]))
        stack += [v.producer() for v in node.inputs if isinstance(v, NodeOutputPattern)]
    return ops


def why_not(model: ir.Model, rule_set: orp.RewriteRuleSet, absent: str) -> str:
    """The failing check's message of the best near-miss, else ``absent``."""
    tracer = MatchingTracer()
    rule_set.apply_to_model(model, tracer=tracer)
    failed = [m for matches in tracer.best_matches_map.values() for m in matches
              if m.status == MatchStatus.CONDITION_FAILED]
    if not failed:
        return absent
    best = max(failed, key=lambda m: len(m.match_result.nodes))
    reason = best.match_result.reason or "its check failed"
    at = best.root_node.name or best.root_node.op_type
    others = len({id(m.root_node) for m in failed} - {id(best.root_node)})  # commuted variants share roots
    more = f" (and {others} more)" if others else ""
    return f"{reason} at {at}{more}"


def static_shape(value: ir.Value | None) -> tuple[int, ...] | None:
    """The fully static shape of ``value``, or None when unknown or symbolic."""
    if value is None or value.shape is None:
        return None
    dims = tuple(value.shape)
    if not all(isinstance(d, int) for d in dims):
        return None
    return dims


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The constant (initializer or Constant node) behind ``value`` as numpy, or None."""
    if value is None:
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def const_ints(value: ir.Value | None) -> list[int] | None:
    arr = const_array(value)
    return None if arr is None or arr.dtype.kind not in "iu" else [int(v) for v in arr.reshape(-1)]


def const_scalar(value: ir.Value | None) -> float | None:
    arr = const_array(value)
    return None if arr is None or arr.size != 1 else float(arr.reshape(-1)[0])


def attr_ints(node: ir.Node, name: str) -> list[int] | None:
    attr = node.attributes.get(name)
    return None if attr is None else list(attr.as_ints())


def attr_int(node: ir.Node, name: str, default: int) -> int:
    attr = node.attributes.get(name)
    return default if attr is None else attr.as_int()


def initializer(op, array: np.ndarray, owner: ir.Value | None, what: str) -> ir.Value:
    """A new initializer for a replacement, named after the value it belongs to.

    Value names are unique in a graph, so ``<owner>/<what>`` never collides with an existing
    initializer (onnxscript keeps the *old* tensor when a replacement reuses a name).
    """
    name = f"{owner.name if owner is not None and owner.name else 'edgekit'}/{what}"
    return op.initializer(ir.tensor(np.ascontiguousarray(array), name=name), name=name)


def constants_second(model: ir.Model) -> None:
    """Put the constant operand of every commutative binary op (Add, Mul) second, in place.

    Exporters write ``Mul(0.5, x)`` as often as ``Mul(x, 0.5)``; one canonical order lets a rule list
    its operand orders instead of onnxscript's ``commute()``, which doubles the rules per Add/Mul.
    """
    for node in model.graph.all_nodes():
        if node.op_type in ("Add", "Mul") and node.domain in ("", "ai.onnx") and len(node.inputs) == 2:
            a, b = node.inputs
            if a is not None and b is not None and const_array(a) is not None and const_array(b) is None:
                node.replace_input_with(0, b)
                node.replace_input_with(1, a)
