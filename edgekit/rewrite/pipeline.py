"""Apply a target's ordered module swaps and ONNX rewrite rules, reporting counts per rule.

Each target declares a plain ordered tuple of rules (ONNX) and swaps (torch) in
:mod:`edgekit.rewrite.registry`, each with the reason it is there. The ONNX model is converted to
onnx-ir once, every rule rewrites it in place (shapes are re-inferred after a rule that changed the
graph, so the next rule's checks see static shapes), and it is serialized once at the end.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import onnx
import onnx_ir as ir
from torch import nn

from edgekit.config import Precision, Target
from edgekit.rewrite.ir_passes import infer_shapes, to_proto


@dataclass
class RewriteReport:
    swaps: dict[str, int] = field(default_factory=dict)
    rules: dict[str, int] = field(default_factory=dict)
    not_applied: dict[str, str] = field(default_factory=dict)  # rule -> why it did not match (--explain)

    def to_dict(self) -> dict:
        return {"swaps": self.swaps, "rules": self.rules, "not_applied": self.not_applied}


LEFT_OUT = "left out of this export (--auto-fix found it changed the numerics, or leave_out named it)"


def apply_swaps(model: nn.Module, target: Target, report: RewriteReport,
                precision: Precision | None = None, leave_out: tuple[str, ...] = ()) -> nn.Module:
    """``target``'s module swaps in order (a swap ``precision`` skips, or ``leave_out`` names, is reported with
    count 0 and why)."""
    from edgekit.rewrite.registry import skip_reason, swaps_for

    for swap in swaps_for(target):
        if swap.name in leave_out:
            report.swaps[swap.name] = 0
            report.not_applied[swap.name] = LEFT_OUT
            continue
        skip = skip_reason(swap, precision)
        if skip:
            report.swaps[swap.name] = 0
            report.not_applied[swap.name] = f"left out for {precision.value}: {skip}"
            continue
        count = swap.apply(model)
        report.swaps[swap.name] = count
        if count == 0:
            report.not_applied[swap.name] = f"the model has no {swap.replaces or 'module this swap replaces'}"
    return model


def apply_rewrites(model: onnx.ModelProto, target: Target, report: RewriteReport,
                   precision: Precision | None = None, leave_out: tuple[str, ...] = ()) -> onnx.ModelProto:
    """``target``'s rules in order (without those ``precision`` skips or ``leave_out`` names, which the report
    lists with why)."""
    from edgekit.rewrite.registry import rules_for, skipped_for

    rules = rules_for(target)
    if not rules:
        return model
    skip = {} if precision is None else {name: f"left out for {precision.value}: {why}"
                                         for name, why in skipped_for(target, precision).items()}
    skip.update({name: LEFT_OUT for name in leave_out})
    ir_model = ir.serde.deserialize_model(model)
    run_rules(ir_model, rules, report, skip)
    return to_proto(ir_model)


def run_rules(model: ir.Model, rules: Sequence, report: RewriteReport, skip: dict[str, str] | None = None) -> None:
    """Run ``rules`` (``registry.Rule``) in order on ``model`` in place, filling ``report``; a rule in ``skip``
    is reported with count 0 and the reason given there."""
    for rule in rules:
        if skip and rule.name in skip:
            report.rules[rule.name] = 0
            report.not_applied[rule.name] = skip[rule.name]
            continue
        count, why_not = rule.rewrite(model)
        report.rules[rule.name] = count
        if count == 0 and why_not:
            report.not_applied[rule.name] = why_not
        if count:
            infer_shapes(model)
