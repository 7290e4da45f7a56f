"""Apply a target's ordered module swaps and ONNX rewrite rules, reporting counts per rule.

Each target declares a plain ordered tuple of rules (ONNX) and swaps (torch) in
:mod:`edgekit.rewrite.registry`, each with the reason it is there.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from torch import nn

from edgekit.config import Target


@dataclass
class RewriteReport:
    swaps: dict[str, int] = field(default_factory=dict)
    rules: dict[str, int] = field(default_factory=dict)
    not_applied: dict[str, str] = field(default_factory=dict)  # rule -> why it did not match (--explain)

    def to_dict(self) -> dict:
        return {"swaps": self.swaps, "rules": self.rules, "not_applied": self.not_applied}


def apply_swaps(model: nn.Module, target: Target, report: RewriteReport) -> nn.Module:
    from edgekit.rewrite.registry import swaps_for

    for swap in swaps_for(target):
        report.swaps[swap.name] = swap.apply(model)
    return model


def apply_rewrites(model: onnx.ModelProto, target: Target, report: RewriteReport) -> onnx.ModelProto:
    from edgekit.rewrite.registry import rules_for

    for rule in rules_for(target):
        model, count, why_not = rule.apply(model)
        report.rules[rule.name] = count
        if count == 0 and why_not:
            report.not_applied[rule.name] = why_not
    return model
