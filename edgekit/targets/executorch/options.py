"""ExecuTorch's target options (kept light: the CLI declares its flags from here)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgekit.errors import UsageError
from edgekit.targets.options import Flag

# the ExecuTorch backends a program can be lowered for; xnnpack runs here (the wheel's runtime has it), the others
# are lowered here where their ahead-of-time parts install and run on their devices (docs/executorch.md)
DELEGATES = ("xnnpack", "coreml", "qnn", "vulkan")


@dataclass(frozen=True)
class ExecuTorchOptions:
    """delegate: the backend the program's graph is lowered to (what the partitioner hands it; the rest runs on
    ExecuTorch's portable kernels)."""

    delegate: str = "xnnpack"

    KEYS: ClassVar[tuple[str, ...]] = ("delegate",)
    FLAGS: ClassVar[tuple[Flag, ...]] = (
        Flag("delegate", "ExecuTorch backend the program is lowered to [default: xnnpack, which runs here; coreml, "
             "qnn and vulkan run on their devices].", choices=DELEGATES),
    )

    @staticmethod
    def parse(options: dict | None) -> ExecuTorchOptions:
        delegate = str((options or {}).get("delegate") or "xnnpack").lower()
        if delegate not in DELEGATES:
            raise UsageError(f"--delegate {delegate!r} is not an ExecuTorch backend edgekit lowers to; choose one of "
                             f"{', '.join(DELEGATES)}")
        return ExecuTorchOptions(delegate)


Options = ExecuTorchOptions
