"""Which module swaps and ONNX rules each target runs, in order, and why."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx
from torch import nn

from edgekit.config import Target


@dataclass(frozen=True)
class Swap:
    name: str
    reason: str
    apply: Callable[[nn.Module], int]  # swaps in place, returns how many modules were swapped


@dataclass(frozen=True)
class Rule:
    name: str
    reason: str
    apply: Callable[[onnx.ModelProto], tuple[onnx.ModelProto, int, str]]  # -> model, count, why not


def swaps_for(target: Target) -> tuple[Swap, ...]:
    return ()


def rules_for(target: Target) -> tuple[Rule, ...]:
    return ()
