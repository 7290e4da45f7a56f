"""One engine per runtime: open a model file, infer on numpy feeds, read the runtime's own per-layer profiler.

Every place that runs a model uses these: the targets' ``open`` (the parity gate, ``edgekit.runtime.load``,
``evaluate``), quantization scoring, and the profiler, locally and on a device. The package imports nothing
from edgekit outside this folder (relative imports only), so ``edgekit profile --remote`` copies the folder
to a device as it is and runs ``python3 -m engines`` there (:mod:`.measure`).

An engine is a context manager::

    with open_engine("onnxruntime", "model.onnx", {"graph_optimization_level": "ORT_ENABLE_ALL"}, threads=2) as e:
        outputs = e.infer({e.input_names[0]: x})      # list of arrays, in output order
        layers = e.profile([feeds], iters=10)          # per-layer records, or None where the runtime has no profiler

``options`` are a bundle's ``runtime_options`` (what its manifest records); failures raise :class:`EngineError`
with one line in the runtime's own words.
"""
from __future__ import annotations

import importlib

from .base import Engine, EngineError

# runtime name (a manifest's runtime.name) -> (module in this package, engine class)
ENGINES = {"onnxruntime": ("onnxruntime", "OrtEngine"), "openvino": ("openvino", "OvEngine"),
           "tensorrt": ("tensorrt", "TrtEngine"), "coreml": ("coreml", "CoreMlEngine"),
           "executorch": ("executorch", "ExecuTorchEngine"), "litert": ("litert", "LiteRtEngine")}


def engine_class(runtime: str) -> type[Engine]:
    if runtime not in ENGINES:
        raise EngineError(f"no engine runs {runtime or 'unknown'} models (engines: {', '.join(ENGINES)})")
    module, name = ENGINES[runtime]
    return getattr(importlib.import_module(f".{module}", __name__), name)


def open_engine(runtime: str, model, options: dict | None = None, threads: int | None = None) -> Engine:
    """Open ``model`` (a path, or what that runtime takes in memory) on ``runtime``."""
    return engine_class(runtime).open(model, options or {}, threads)


__all__ = ["ENGINES", "Engine", "EngineError", "engine_class", "open_engine"]
