"""How a target quantizes to int8: declared by the target (``TargetBackend.int8``), read by
:mod:`edgekit.quant`, which holds no per-target branches of its own."""
from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class Scoring(str, enum.Enum):
    """The runtime int8 candidates are scored and timed on, on this machine."""

    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


@dataclass(frozen=True)
class Int8Plan:
    """scoring, scored_on: where candidates are measured, and how the manifest names it.
    recipes: ``(fp32 proto, calibration inputs, ranges, QuantOptions) -> [Candidate]`` (edgekit.quant.recipes),
        the candidates to score, in order of preference.
    island_rules: island rules beyond every target's int8 defaults (keys of edgekit.quant.islands.REASONS).
    """

    scoring: Scoring
    scored_on: str
    recipes: Callable
    island_rules: tuple[str, ...] = ()
