"""TensorRT (GPU only): a serialized engine run with ``execute_v2`` on device buffers from cuda-python's runtime
API, per-layer times from TensorRT's ``IProfiler``, each layer's ONNX nodes from the engine inspector.

``options`` are the bundle's runtime_options: ``profile`` (the optimization profile to run), and how the engine
must be loaded: ``version_compatible`` (it carries the lean runtime as host code, which a runtime refuses unless
``engine_host_code_allowed``; trtexec --versionCompatible and Polygraphy allow it the same way) and
``dla_core``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .base import Engine, EngineError
from .trt_runtime import make_logger, make_runtime

# the ONNX parser records each layer's ONNX nodes in its inspector Metadata: "[ONNX Layer: /a/MatMul]" entries
_META = re.compile(r"\[ONNX Layer: ([^\]\x1e\x1f]+)\]")


def trt_layer_names(layer_name: str) -> list[str]:
    """TensorRT names a fused layer after its ONNX nodes, joined by ' + ' (and wraps foreign nodes
    as '{ForeignNode[a...b]}'); reformat layers name tensors. -> the ONNX node names it mentions."""
    inner = re.sub(r"^\{ForeignNode\[(.*)\]\}$", r"\1", layer_name.strip())
    parts = re.split(r" \+ |\.\.\.", inner)
    return [p.strip() for p in parts if p.strip() and not p.strip().startswith("Reformatting CopyNode")]


def inspector_layers(data: str | dict) -> list[dict]:
    """Engine inspector JSON -> [{"name", "type", "onnx_nodes", "tactic"}] in execution order (the ONNX nodes
    from the layer's metadata, else from its name)."""
    doc = json.loads(data) if isinstance(data, str) else data
    layers = []
    for entry in doc.get("Layers", []):
        if isinstance(entry, str):  # built without detailed verbosity: names only
            entry = {"Name": entry}
        name = entry.get("Name", "")
        nodes = _META.findall(entry.get("Metadata", "") or "")
        layers.append({"name": name, "type": entry.get("LayerType", ""), "tactic": entry.get("TacticName", ""),
                       "onnx_nodes": nodes or trt_layer_names(name)})
    return layers


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise EngineError("running a TensorRT engine needs cuda-python: pip install cuda-python") from None
    return cudart


class TrtEngine(Engine):
    def __init__(self, model, options: dict, threads: int | None = None):
        import tensorrt as trt

        self.trt, self.cudart, self.path = trt, _cudart(), Path(model)
        self.logger = make_logger(trt)
        # kept: a runtime must outlive its engines
        self.runtime = make_runtime(trt, self.logger, bool(options.get("version_compatible")), options.get("dla_core"))
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:  # e.g. "version tag does not match": preflight should have said why first
            why = self.logger.errors[-1] if self.logger.errors else ("built by another TensorRT version or for "
                                                                     "another GPU (the manifest's runtime says which)")
            raise EngineError(f"TensorRT {trt.__version__} cannot load {self.path.name}: {why}", why)
        self.context = self.engine.create_execution_context()
        profile = int(options.get("profile", 0))
        if profile:
            self.context.set_optimization_profile_async(profile, 0)
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in self.names if n not in self.input_names]
        self.buffers: dict[str, tuple[int, int]] = {}

    def _ptr(self, name: str, nbytes: int) -> int:
        ptr, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                self.cudart.cudaFree(ptr)
            err, ptr = self.cudart.cudaMalloc(nbytes)
            if int(err) != 0:
                raise EngineError(f"cudaMalloc of {nbytes} bytes failed ({err})")
            self.buffers[name] = (ptr, nbytes)
        return self.buffers[name][0]

    def infer(self, feeds: dict) -> list:
        trt, cudart = self.trt, self.cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for n in self.input_names:
            x = np.ascontiguousarray(feeds[n])
            self.context.set_input_shape(n, x.shape)
            cudart.cudaMemcpy(self._ptr(n, x.nbytes), x.ctypes.data, x.nbytes, h2d)
        outputs, bindings = [], []
        for n in self.names:
            if n in self.input_names:
                bindings.append(self.buffers[n][0])
                continue
            out = np.empty(tuple(self.context.get_tensor_shape(n)), dtype=trt.nptype(self.engine.get_tensor_dtype(n)))
            outputs.append((n, out))
            bindings.append(self._ptr(n, out.nbytes))
        if not self.context.execute_v2(bindings):
            raise EngineError(f"TensorRT could not run {self.path.name}: "
                              f"{self.logger.errors[-1] if self.logger.errors else 'execute_v2 returned false'}")
        for n, out in outputs:
            cudart.cudaMemcpy(out.ctypes.data, self.buffers[n][0], out.nbytes, d2h)
        return [o for _, o in outputs]

    def layer_times(self, feeds: list[dict], iters: int = 20, warmup: int = 5) -> dict[str, list[float]]:
        """Each layer's times (ms) over ``iters`` runs after ``warmup`` (TensorRT's IProfiler)."""
        trt = self.trt
        times: dict[str, list[float]] = {}

        class _Profiler(trt.IProfiler):
            def __init__(self):
                trt.IProfiler.__init__(self)

            def report_layer_time(self, layer_name, ms):
                times.setdefault(layer_name, []).append(ms)

        for i in range(warmup):
            self.infer(feeds[i % len(feeds)])
        self.context.profiler = _Profiler()
        try:
            for i in range(iters):
                self.infer(feeds[i % len(feeds)])
        finally:
            self.context.profiler = None
        return times

    def layer_info(self) -> list[dict]:
        """The engine inspector's layers (name, type, tactic, ONNX nodes), in execution order."""
        inspector = self.engine.create_engine_inspector()
        inspector.execution_context = self.context
        return inspector_layers(inspector.get_engine_information(self.trt.LayerInformationFormat.JSON))

    def profile(self, feeds: list[dict], iters: int = 10, warmup: int = 2) -> dict:
        feeds = feeds if isinstance(feeds, list) else [feeds]
        times = self.layer_times(feeds, iters, warmup)
        nodes = {layer["name"]: layer["onnx_nodes"] for layer in self.layer_info()}
        records = [{"name": n, "op_type": "TensorRT layer", "kernel": "", "time_ms": float(np.median(ts)),
                    "calls": max(1, len(ts) // max(iters, 1)), "onnx_nodes": nodes.get(n) or trt_layer_names(n)}
                   for n, ts in times.items()]
        memory = {"device_activation_mb": self.engine.device_memory_size_v2 / 2**20}
        return {"profiler": "tensorrt IProfiler", "statistic": "median", "iterations": iters, "records": records,
                "memory": memory}

    def close(self) -> None:
        for ptr, _ in self.buffers.values():
            self.cudart.cudaFree(ptr)
        self.buffers.clear()
