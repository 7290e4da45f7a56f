"""The TensorRT logger and runtime that both the engine build (``edgekit/targets/tensorrt/engine.py``, also a
bundle's ``build/build_engine.py``) and :class:`.tensorrt.TrtEngine` use. Standard library only, and no import
of its package: an ``--onnx-only`` bundle's build kit carries this file beside its build script."""
from __future__ import annotations

import sys


def make_logger(trt):
    """A ``trt.ILogger`` that keeps TensorRT's errors (``.errors``, for one-line messages) and prints warnings
    and worse."""

    class CollectingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if int(severity) <= int(trt.ILogger.Severity.ERROR):
                self.errors.append(msg)
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                print(f"[TensorRT] {msg}", file=sys.stderr)

    return CollectingLogger()


def make_runtime(trt, logger, version_compatible: bool = False, dla_core: int | None = None):
    """A ``trt.Runtime`` that can load the engine it is made for: host code allowed for a version-compatible
    engine (it carries the lean runtime as host code, which a runtime refuses unless told; trtexec
    --versionCompatible and Polygraphy allow it the same way), and the DLA core for a DLA engine. Keep it alive
    as long as its engines."""
    runtime = trt.Runtime(logger)
    if version_compatible:
        runtime.engine_host_code_allowed = True
    if dla_core is not None:
        runtime.DLA_core = int(dla_core)
    return runtime
