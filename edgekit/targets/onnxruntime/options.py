"""ONNX Runtime's target options (kept light: the CLI declares its flags from here)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgekit.targets.options import Flag


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    """mobile: write the .ort format and the operator list for a minimal mobile build (:mod:`.mobile`)."""

    mobile: bool = False

    KEYS: ClassVar[tuple[str, ...]] = ("mobile",)
    FLAGS: ClassVar[tuple[Flag, ...]] = (
        Flag("mobile", "ONNX Runtime: write the .ort format and the operator list for a minimal mobile build.",
             is_flag=True),
    )

    @staticmethod
    def parse(options: dict | None) -> OnnxRuntimeOptions:
        return OnnxRuntimeOptions(mobile=bool((options or {}).get("mobile", False)))


Options = OnnxRuntimeOptions
