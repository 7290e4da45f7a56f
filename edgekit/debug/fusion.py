"""Whether a runtime's fused kernel, not the graph, breaks parity: ONNX Runtime run at lower graph optimization
levels.

ONNX Runtime replaces node patterns with its own fused kernels when it opens a model (Conv+activation into
FusedConv, the GELU and LayerNorm patterns into single kernels, QDQ triples into QLinear ops, NCHWc layouts).
A fused kernel that computes something other than the nodes it replaced is a runtime bug the graph cannot show:
the divergence locator's taps can even hide it, since an exposed tensor stops a fusion across it. So a failing
gate on ONNX Runtime is run again at each lower level (``extended``, ``basic``, ``disabled``); the first that
passes is the repair (``--ort-optimization LEVEL``, recorded in the bundle), and the kernels ONNX Runtime forms
at the bundle's level but not at that one are named as the suspects.

OpenVINO has no such switch for its CPU plugin's fusions, so the check is ONNX Runtime's.
"""
from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgekit.targets.onnxruntime.options import LEVELS


@dataclass(frozen=True)
class FusionFinding:
    """``level`` (edgekit's name) passes the gate where ``failing`` did not; ``kernels``: the ops ONNX Runtime
    runs at ``failing`` and not at ``level`` (the suspects); ``summary``: the gate's figures at ``level``."""

    failing: str
    level: str
    kernels: tuple[str, ...]
    summary: str

    def diagnosis(self, module: str = "") -> dict:
        suspects = f" ({', '.join(self.kernels)})" if self.kernels else ""
        return {"kind": "fused_kernel", "module": module, "keep_fp": [], "ort_optimization": self.level,
                "cause": f"ONNX Runtime's fused kernels at optimization level {self.failing}{suspects} disagree with "
                         f"the nodes they replace: at level {self.level} the export passes the gate "
                         f"({self.summary})",
                "detail": {"failing_level": self.failing, "passing_level": self.level,
                           "kernels": list(self.kernels)}}


def level_name(graph_optimization_level: str) -> str:
    """edgekit's name (all, extended, ...) of an ``ORT_*`` level."""
    return {v: k for k, v in LEVELS.items()}.get(graph_optimization_level, "all")


def find_passing_level(gate: Callable[[str], object], model, failing: str) -> FusionFinding | None:
    """Run ``gate(level)`` (a parity report with ``passed`` and ``summary()``) at each level below ``failing``,
    most fusing first; the first that passes, with the kernels only ``failing`` forms in ``model`` (a path or
    serialized ONNX), or None when none does (then fusion is not the cause)."""
    names = list(LEVELS)
    last_failing = failing
    for level in names[names.index(failing) + 1:]:
        report = gate(level)
        if report.passed:  # the suspects: what the lowest failing level forms and this one does not
            only = kernels(model, last_failing) - kernels(model, level)
            return FusionFinding(failing, level, tuple(sorted(only)), report.summary())
        last_failing = level
    return None


def kernels(model, level: str) -> Counter:
    """The ops (``domain.op`` outside the ONNX domain) of ``model`` as ONNX Runtime's CPU provider runs it at
    ``level``: its optimized graph."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
        path = Path(tmp) / "optimized.onnx"
        so.optimized_model_filepath = str(path)
        so.log_severity_level = 3  # the NCHWc warning about hardware-specific saved graphs is expected here
        source = str(model) if isinstance(model, Path) else model
        ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
        optimized = onnx.load(str(path))
    return Counter(f"{n.domain}.{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
                   for n in optimized.graph.node)
