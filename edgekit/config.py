"""Options as Enums and frozen dataclasses, validated at the edge (CLI or API entry)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgekit.errors import UsageError


class _Choice(str, enum.Enum):
    @classmethod
    def parse(cls, value: str | _Choice) -> _Choice:
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise UsageError(f"unknown {cls.__name__.lower()} {value!r}; choose one of: {choices}") from None


class Target(_Choice):
    ONNX = "onnx"  # ONNX Runtime
    OPENVINO = "openvino"
    TRT = "trt"
    COREML = "coreml"


class Precision(_Choice):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"


class Task(_Choice):
    CLASSIFICATION = "classification"
    SEGMENTATION = "segmentation"


@dataclass(frozen=True)
class Tolerance:
    """Parity thresholds of a built artifact against PyTorch fp32 (see DESIGN.md, Tolerances).

    cosine: minimum cosine similarity of the flattened outputs, per image.
    max_abs_rel: maximum abs error as a fraction of the reference output's range (max - min).
    agreement: minimum top-1 (classification) or per-pixel label (segmentation) agreement.
    """

    cosine: float
    max_abs_rel: float | None = None
    agreement: float | None = None

    @staticmethod
    def default(precision: Precision) -> Tolerance:
        if precision is Precision.FP32:
            return Tolerance(cosine=0.99999, max_abs_rel=1e-3)
        if precision in (Precision.FP16, Precision.BF16):
            return Tolerance(cosine=0.999)
        return Tolerance(cosine=0.99, agreement=0.97)

    def overridden(self, overrides: dict[str, tuple[float, str]], precision: Precision) -> Tolerance:
        """Apply a model's per-precision overrides, e.g. {"fp16_cosine": (0.998, "why")}."""
        changes = {}
        for key, (value, _reason) in overrides.items():
            prec, _, fieldname = key.partition("_")
            if prec == precision.value and fieldname in ("cosine", "max_abs_rel", "agreement"):
                changes[fieldname] = value
        return replace(self, **changes) if changes else self


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x3x512x512' -> (1, 3, 512, 512)."""
    try:
        shape = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise UsageError(f"input shape {text!r} is not of the form 1x3x224x224") from None
    if len(shape) != 4 or any(d <= 0 for d in shape):
        raise UsageError(f"input shape {text!r} must be 4 positive dims NxCxHxW, e.g. 1x3x224x224")
    return shape


@dataclass(frozen=True)
class ExportConfig:
    """Everything `edgekit export` needs, parsed and validated."""

    source: str
    target: Target = Target.ONNX
    precision: Precision = Precision.FP32
    out: Path = Path("bundles/model")
    checkpoint: Path | None = None
    input_shape: tuple[int, ...] | None = None
    dynamic_batch: bool = False
    calib: Path | None = None
    calib_size: int | None = None
    threads: int | None = None
    opset: int = 17
    verify: bool = True
    force: bool = False
    rewrite: bool = True
    explain: bool = False
    tolerance: Tolerance | None = None
    target_options: dict = field(default_factory=dict)
