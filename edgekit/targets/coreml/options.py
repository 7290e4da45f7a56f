"""CoreML's target options (kept light: the CLI declares its flags from here)."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from edgekit.errors import UsageError
from edgekit.targets.options import Flag

DEPLOYMENT_TARGETS = ("iOS16", "iOS17", "iOS18", "macOS13", "macOS14", "macOS15")


class CoreMlOutput(str, enum.Enum):
    LOGITS = "logits"  # raw scores: (1, classes) or (1, classes, h, w)
    LABELS = "labels"  # segmentation only: int32 label map (1, h, w), argmax inside the model


@dataclass(frozen=True)
class CoreMlOptions:
    output: CoreMlOutput = CoreMlOutput.LOGITS
    deployment_target: str = "iOS16"  # ML Program with int8 weight compression needs iOS16 / macOS13
    compute_units: str = "ALL"  # what the macOS runner asks CoreML for: ALL, CPU_ONLY, CPU_AND_GPU, CPU_AND_NE

    # deployment_target and compute_units are set from Python only (target_options)
    KEYS: ClassVar[tuple[str, ...]] = ("coreml_output", "deployment_target", "compute_units")
    FLAGS: ClassVar[tuple[Flag, ...]] = (
        Flag("coreml_output", "CoreML segmentation output: logits, or the label map (argmax in the model).",
             choices=("logits", "labels")),
    )

    @staticmethod
    def parse(options: dict | None) -> CoreMlOptions:
        o = dict(options or {})
        try:
            output = CoreMlOutput(str(o.get("coreml_output") or "logits").lower())
        except ValueError:
            raise UsageError(f"--coreml-output {o.get('coreml_output')!r}: choose labels or logits") from None
        target = str(o.get("deployment_target") or "iOS16")
        match = next((t for t in DEPLOYMENT_TARGETS if t.lower() == target.lower()), None)
        if match is None:
            raise UsageError(f"CoreML deployment target {target!r}: choose one of {', '.join(DEPLOYMENT_TARGETS)}")
        units = str(o.get("compute_units") or "ALL").upper()
        if units not in ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE"):
            raise UsageError(f"CoreML compute units {units!r}: choose ALL, CPU_ONLY, CPU_AND_GPU or CPU_AND_NE")
        return CoreMlOptions(output, match, units)


Options = CoreMlOptions
