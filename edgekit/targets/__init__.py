"""Target registry: each target's options (which declare its CLI flags) and its backend.

Adding a target: its modules (a backend subclassing :class:`TargetBackend`, options with ``KEYS``, ``FLAGS``
and ``parse``), a member of :class:`edgekit.config.Target`, its line in ``OPTIONS`` and its branch in
:func:`get_backend`.
"""
from __future__ import annotations

from edgekit.config import Target
from edgekit.errors import UsageError
from edgekit.targets.base import BuildResult, Runner, TargetBackend
from edgekit.targets.coreml_options import CoreMlOptions
from edgekit.targets.onnxruntime_options import OnnxRuntimeOptions
from edgekit.targets.openvino_options import OpenVinoOptions
from edgekit.targets.options import Flag
from edgekit.targets.tensorrt_options import TrtOptions

OPTIONS = {Target.ONNX: OnnxRuntimeOptions, Target.OPENVINO: OpenVinoOptions, Target.TRT: TrtOptions,
           Target.COREML: CoreMlOptions}


def get_backend(target: Target, options: dict | None = None) -> TargetBackend:
    """The backend of ``target`` with its ``options`` (target_options) parsed, here, at the edge."""
    parsed = parse_options(target, options)
    if target is Target.ONNX:
        from edgekit.targets.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(parsed)
    if target is Target.OPENVINO:
        from edgekit.targets.openvino import OpenVinoBackend

        return OpenVinoBackend(parsed)
    if target is Target.TRT:
        from edgekit.targets.tensorrt import TensorRtBackend

        return TensorRtBackend(parsed)
    if target is Target.COREML:
        from edgekit.targets.coreml import CoreMlBackend

        return CoreMlBackend(parsed)
    raise ValueError(target)


def parse_options(target: Target, options: dict | None):
    """``target``'s options from a target_options dict (see :func:`check_keys`)."""
    return OPTIONS[target].parse(check_keys(target, options))


def check_keys(target: Target, options: dict | None) -> dict:
    """The keys of ``options`` that are set (not None or False); one that ``target`` does not read is a usage
    error, naming the target that does."""
    given = {k: v for k, v in (options or {}).items() if v is not None and v is not False}
    own = OPTIONS[target]
    for key in given:
        if key not in own.KEYS:
            owner = next((t for t, o in OPTIONS.items() if key in o.KEYS), None)
            flag = next((f for o in OPTIONS.values() for f in o.FLAGS if f.key == key), None)
            name = flag.name if flag else f"target option {key!r}"
            if owner is None:
                raise UsageError(f"unknown {name}; --target {target.value} reads {', '.join(own.KEYS)}")
            raise UsageError(f"{name} applies to --target {owner.value}, not {target.value}")
    return given


def target_flags() -> list[tuple[Target, Flag]]:
    """Every target's `edgekit export` flags, in registry order."""
    return [(target, flag) for target, options in OPTIONS.items() for flag in options.FLAGS]


def options_from_flags(target: Target, values: dict) -> dict:
    """target_options from the CLI's flag values (key -> value, None or False when not given); a flag of another
    target is a usage error naming it."""
    flags = {flag.key: flag for _, flag in target_flags()}
    given = {key: flags[key].record(value) for key, value in values.items() if flags[key].given(value)}
    return check_keys(target, given)


__all__ = ["OPTIONS", "BuildResult", "Runner", "TargetBackend", "check_keys", "get_backend", "options_from_flags",
           "parse_options", "target_flags"]
