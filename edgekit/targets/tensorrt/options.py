"""TensorRT build options, parsed once at the edge (CLI or API) into a frozen dataclass.

Precision is not an option here: every engine edgekit builds is strongly typed (TensorRT 11 has no
other kind, and 10.x takes the flag), so fp16 and int8 live in the ONNX itself (fp16 tensors with fp32
islands, explicit Q/DQ) and TensorRT runs each layer in the type the graph gives it.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from edgekit.errors import UsageError
from edgekit.targets.options import Flag
from edgekit.targets.tensorrt.profiles import ShapeProfile


class HardwareCompatibility(str, enum.Enum):
    """``IBuilderConfig.hardware_compatibility_level``: which GPUs besides the build GPU may run the engine."""

    NONE = "none"  # only GPUs of the build GPU's compute capability (TensorRT's default)
    AMPERE_PLUS = "ampere+"  # any Ampere or later GPU (compute capability >= 8.0); plugin kernels as sm_80 PTX
    SAME_COMPUTE_CAPABILITY = "same-cc"  # other GPUs of the same compute capability (TensorRT >= 10.4)

    @classmethod
    def parse(cls, value: str | HardwareCompatibility) -> HardwareCompatibility:
        if isinstance(value, cls):
            return value
        aliases = {"ampere_plus": "ampere+", "same_compute_capability": "same-cc",
                   "same-compute-capability": "same-cc"}
        text = str(value).lower()
        try:
            return cls(aliases.get(text, text))
        except ValueError:
            raise UsageError(f"unknown hardware compatibility {value!r}; choose one of: "
                             f"{', '.join(m.value for m in cls)}") from None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)
_UNITS = {"": 2**20, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}  # a bare number is MiB, as in trtexec


def parse_size(text: str | int) -> int:
    """'2G' -> 2147483648, '512M' -> 536870912, '1024' -> 1 GiB (bare numbers are MiB, as trtexec reads them)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"--workspace {text!r} is not a size like 2G, 512M or 1024 (MiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclass(frozen=True)
class TrtOptions:
    """What ``edgekit export --target trt`` builds, besides the ONNX it builds from.

    shapes: the optimization profile, min:opt:max (the export's ``--shapes`` envelope, which the pipeline sets;
        parsed against the model's inputs at build time).
    onnx_only: write the TensorRT-flavoured ONNX, the plugin library and the build commands; build nothing.
    workspace: builder workspace limit in bytes (None: TensorRT's default, the device's memory).
    dla_core: run on this DLA core (Jetson), falling back to the GPU for layers DLA lacks.
    timing_cache: file of measured tactics, read before the build and updated after it.
    version_compatible: the engine runs on later TensorRT versions of the same major, and a 10.x build on 11.x
        (lean runtime embedded, loaded as host code).
    hardware_compatibility: which GPUs besides the build GPU may run the engine.
    """

    shapes: str | None = None
    onnx_only: bool = False
    workspace: int | None = None
    dla_core: int | None = None
    timing_cache: Path | None = None
    version_compatible: bool = False
    hardware_compatibility: HardwareCompatibility = HardwareCompatibility.NONE
    profiles: tuple[ShapeProfile, ...] = field(default=(), compare=False)  # filled at build from `shapes`

    KEYS: ClassVar[tuple[str, ...]] = ("shapes", "onnx_only", "workspace", "dla_core", "timing_cache",
                                       "version_compatible", "hardware_compatibility")
    FLAGS: ClassVar[tuple[Flag, ...]] = (
        Flag("onnx_only", "TensorRT: write the TensorRT-flavoured ONNX, plugins and trtexec command; build no engine.",
             is_flag=True),
        Flag("workspace", "TensorRT builder workspace limit, e.g. 2G or 512M."),
        Flag("dla_core", "TensorRT: run on this DLA core (Jetson), GPU fallback.", type=int),
        Flag("timing_cache", "TensorRT timing cache file: read before the build, updated after it.", type=Path),
        Flag("version_compatible", "TensorRT: engine runs on later TensorRT versions (later 10.x and 11.x for a 10.x "
             "build).", is_flag=True),
        Flag("hardware_compatibility", "TensorRT: GPUs besides the build GPU that may run the engine.",
             choices=("none", "ampere+", "same-cc")),
    )

    @staticmethod
    def parse(options: dict | None) -> TrtOptions:
        """From ``target_options`` (CLI strings or API values); the registry has refused keys of other targets."""
        o = dict(options or {})
        dla = o.get("dla_core")
        if dla is not None:
            try:
                dla = int(dla)
            except (TypeError, ValueError):
                raise UsageError(f"--dla-core {dla!r} is not a core number (0 or 1 on Jetson AGX Orin)") from None
            if dla < 0:
                raise UsageError(f"--dla-core must be >= 0, got {dla}")
        workspace = o.get("workspace")
        return TrtOptions(
            shapes=o.get("shapes") or None,
            onnx_only=bool(o.get("onnx_only", False)),
            workspace=parse_size(workspace) if workspace not in (None, "") else None,
            dla_core=dla,
            timing_cache=Path(o["timing_cache"]) if o.get("timing_cache") else None,
            version_compatible=bool(o.get("version_compatible", False)),
            hardware_compatibility=HardwareCompatibility.parse(o.get("hardware_compatibility") or "none"),
        )

    def to_dict(self) -> dict:
        """The build configuration as recorded in the manifest and read by the engine build script."""
        return {"onnx_only": self.onnx_only, "workspace": self.workspace, "dla_core": self.dla_core,
                "timing_cache": str(self.timing_cache) if self.timing_cache else None,
                "version_compatible": self.version_compatible,
                "hardware_compatibility": self.hardware_compatibility.value, "strongly_typed": True,
                "profiles": [p.to_dict() for p in self.profiles]}


Options = TrtOptions
