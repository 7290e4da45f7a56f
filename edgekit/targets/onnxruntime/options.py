"""ONNX Runtime's target options (kept light: the CLI declares its flags from here)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgekit.errors import UsageError
from edgekit.targets.options import Flag


# edgekit's names for ONNX Runtime's GraphOptimizationLevel values, most fusing first
LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
          "disabled": "ORT_DISABLE_ALL"}


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    """mobile: write the .ort format and the operator list for a minimal mobile build (:mod:`.mobile`).
    ort_optimization: the graph optimization level the bundle records (all, extended, basic, disabled): how far
    ONNX Runtime fuses nodes into its own kernels when the app opens it. Below ``all`` only to step around a fused
    kernel that disagrees with its unfused form (``--auto-fix`` finds the level, :mod:`edgekit.debug.fusion`)."""

    mobile: bool = False
    ort_optimization: str = "all"

    KEYS: ClassVar[tuple[str, ...]] = ("mobile", "ort_optimization")
    FLAGS: ClassVar[tuple[Flag, ...]] = (
        Flag("mobile", "ONNX Runtime: write the .ort format and the operator list for a minimal mobile build.",
             is_flag=True),
        Flag("ort_optimization", "ONNX Runtime graph optimization level the bundle records [default: all]; lower "
             "only to step around a fused kernel that breaks parity.", choices=tuple(LEVELS)),
    )

    @property
    def graph_optimization_level(self) -> str:
        return LEVELS[self.ort_optimization]

    @staticmethod
    def parse(options: dict | None) -> OnnxRuntimeOptions:
        options = options or {}
        parsed = OnnxRuntimeOptions(mobile=bool(options.get("mobile", False)),
                                    ort_optimization=options.get("ort_optimization") or "all")
        if parsed.ort_optimization not in LEVELS:
            raise UsageError(f"--ort-optimization {parsed.ort_optimization!r} is not a level; choose one of "
                             f"{', '.join(LEVELS)}")
        if parsed.mobile and parsed.ort_optimization != "all":
            raise UsageError("--ort-optimization applies to the .onnx bundle; a --mobile bundle is optimized when "
                             "it is converted to the .ort format: drop one of them")
        return parsed



Options = OnnxRuntimeOptions
