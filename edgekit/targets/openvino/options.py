"""OpenVINO's target options (kept light: the CLI declares its flags from here)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgekit.targets.options import Flag


@dataclass(frozen=True)
class OpenVinoOptions:
    """device: the OpenVINO device the parity run compiles for, recorded for the runner (CPU, GPU, NPU, ...)."""

    device: str = "CPU"

    KEYS: ClassVar[tuple[str, ...]] = ("device",)
    FLAGS: ClassVar[tuple[Flag, ...]] = (Flag("device", "OpenVINO device [default: CPU]."),)

    @staticmethod
    def parse(options: dict | None) -> OpenVinoOptions:
        return OpenVinoOptions(device=str((options or {}).get("device") or "CPU"))


Options = OpenVinoOptions
