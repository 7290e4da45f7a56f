"""Optimization profiles for TensorRT (``--shapes min:opt:max``), validated before anything is built.

A TensorRT engine built from an ONNX file with dynamic dimensions needs, per input, the smallest, the
typical and the largest shape it will see. edgekit checks a profile against what the exported model
can actually take, so the mistake surfaces here in one line instead of as a builder error on the
device:

- a dimension the exported ONNX fixes (every dimension but the batch, unless the export made it
  dynamic) must be the same in min, opt and max; windowed and position-embedding models build their
  bias tables and masks for one resolution, so their height and width are fixed;
- a dynamic height or width must be a multiple of the model's size divisor (patch size x window size
  x total stride) at min, opt and max;
- min <= opt <= max, every dimension positive, channels as exported.

Text forms: ``1x3x224x224:4x3x224x224:8x3x224x224`` (the model's only input), ``4x3x224x224`` (a fixed
shape: min = opt = max), and ``input=1x3x224x224:...`` with inputs separated by ``,``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgekit.errors import UsageError

Shape = tuple[int, ...]
Dim = int | str  # an ONNX dimension: a positive int, or a symbolic name for a dynamic one

_AXIS_NAMES = {0: "batch", 1: "channels", 2: "height", 3: "width"}


@dataclass(frozen=True)
class ShapeProfile:
    """min/opt/max shapes of one input (each (N, C, H, W) for an image input)."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    @property
    def is_fixed(self) -> bool:
        return self.min == self.opt == self.max

    def to_dict(self) -> dict:
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @staticmethod
    def from_dict(d: dict) -> ShapeProfile:
        return ShapeProfile(d["name"], tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]))


def _shape(text: str, where: str) -> Shape:
    try:
        shape = tuple(int(p) for p in text.strip().lower().split("x"))
    except ValueError:
        raise UsageError(f"--shapes {where}: {text!r} is not a shape like 1x3x224x224") from None
    if any(d <= 0 for d in shape):
        raise UsageError(f"--shapes {where}: every dimension of {text!r} must be positive")
    return shape


def parse_shapes(text: str, input_names: Sequence[str]) -> tuple[ShapeProfile, ...]:
    """'1x3x224x224:4x3x224x224:8x3x224x224' -> one ShapeProfile per input named (syntax only; see
    :func:`validate_profiles` for the checks against the model)."""
    entries = [e.strip() for e in text.split(",") if e.strip()]
    if not entries:
        raise UsageError("--shapes is empty; give min:opt:max, e.g. 1x3x224x224:4x3x224x224:8x3x224x224")
    profiles = []
    for entry in entries:
        name, sep, spec = entry.rpartition("=")
        if not sep:
            if len(input_names) != 1:
                raise UsageError(f"--shapes {entry!r}: the model has inputs {', '.join(input_names)}; "
                                 f"name each one as NAME=min:opt:max")
            name = input_names[0]
        elif name not in input_names:
            raise UsageError(f"--shapes names input {name!r} but the model's inputs are {', '.join(input_names)}")
        parts = spec.split(":")
        if len(parts) == 1:
            parts = parts * 3
        if len(parts) != 3:
            raise UsageError(f"--shapes {entry!r}: give min:opt:max (three shapes) or one fixed shape")
        mn, opt, mx = (_shape(p, name) for p in parts)
        profiles.append(ShapeProfile(name, mn, opt, mx))
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        raise UsageError(f"--shapes gives input {max(names, key=names.count)!r} more than once")
    return tuple(profiles)


def _fmt(shape: Shape) -> str:
    return "x".join(map(str, shape))


def validate_profile(profile: ShapeProfile, dims: Sequence[Dim], size_divisor: int = 1) -> None:
    """Raise UsageError saying what is wrong when ``profile`` does not fit an input whose exported
    dimensions are ``dims`` (ints fixed, strings dynamic) for a model whose height and width must
    be multiples of ``size_divisor``."""
    label = f"--shapes {profile.name}"
    for which, shape in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
        if len(shape) != len(dims):
            raise UsageError(f"{label}: {which} shape {_fmt(shape)} has {len(shape)} dimensions; the input has "
                             f"{len(dims)}")
    for axis, dim in enumerate(dims):
        lo, mid, hi = profile.min[axis], profile.opt[axis], profile.max[axis]
        axis_name = _AXIS_NAMES.get(axis, f"dimension {axis}") if len(dims) == 4 else f"dimension {axis}"
        if not lo <= mid <= hi:
            raise UsageError(f"{label}: {axis_name} must satisfy min <= opt <= max, got {lo}, {mid}, {hi}")
        if isinstance(dim, int) and dim > 0:
            if (lo, mid, hi) != (dim, dim, dim):
                raise UsageError(f"{label}: {axis_name} is fixed at {dim} in the exported model, got "
                                 f"{lo}:{mid}:{hi}; {_fixed_hint(axis, len(dims))}")
        elif len(dims) == 4 and axis in (2, 3) and size_divisor > 1:
            bad = [v for v in (lo, mid, hi) if v % size_divisor]
            if bad:
                raise UsageError(f"{label}: {axis_name} {bad[0]} is not a multiple of {size_divisor}, the "
                                 f"model's size divisor (patch size x window size x stride); use e.g. "
                                 f"{max(size_divisor, bad[0] // size_divisor * size_divisor)}")


def _fixed_hint(axis: int, rank: int) -> str:
    if rank == 4 and axis == 0:
        return "export with --dynamic-batch to build for a range of batch sizes"
    if rank == 4 and axis in (2, 3):
        return ("the model is exported for one resolution (its position tables and masks are built for it); "
                "export once per resolution with --input-shape")
    return "the exported model does not make it dynamic"


def validate_profiles(profiles: Sequence[ShapeProfile], inputs: dict[str, Sequence[Dim]],
                      size_divisor: int = 1) -> None:
    """Check every profile (see :func:`validate_profile`) and that every dynamic input has one."""
    for p in profiles:
        if p.name not in inputs:
            raise UsageError(f"--shapes names input {p.name!r} but the model's inputs are {', '.join(inputs)}")
        validate_profile(p, inputs[p.name], size_divisor)
    covered = {p.name for p in profiles}
    for name, dims in inputs.items():
        if name not in covered and any(not (isinstance(d, int) and d > 0) for d in dims):
            raise UsageError(f"input {name!r} has dynamic dimensions ({'x'.join(map(str, dims))}); give its "
                             f"range with --shapes {name}=min:opt:max")


def default_profiles(inputs: dict[str, Sequence[Dim]], example: Shape) -> tuple[ShapeProfile, ...]:
    """Without --shapes: each input fixed at the export shape ``example`` (dynamic dims take its value)."""
    out = []
    for name, dims in inputs.items():
        shape = tuple(d if isinstance(d, int) and d > 0 else example[i] for i, d in enumerate(dims))
        out.append(ShapeProfile(name, shape, shape, shape))
    return tuple(out)
