"""Run a TensorRT engine (GPU only): deserialize, infer on numpy feeds, time layer by layer.

Thin on purpose: TensorRT's ``Runtime.deserialize_cuda_engine`` and ``IProfiler``, with Polygraphy's
``TrtRunner`` doing buffers, shapes and copies. The per-layer records follow the profiler's record
format (edgekit/profiling) with each layer's ONNX nodes from the engine inspector, so the report maps
them back to PyTorch modules.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitFailure
from edgekit.targets.base import Runner


class TrtRunner(Runner):
    """``version_compatible`` / ``dla_core``: how the engine was built (the bundle's runtime_options), so the
    runtime allows the host code a version-compatible engine carries and picks the DLA core."""

    def __init__(self, engine_path: Path, profile_index: int = 0, version_compatible: bool = False,
                 dla_core: int | None = None):
        import tensorrt as trt
        from polygraphy.backend.trt import TrtRunner as PolygraphyTrtRunner

        from edgekit.targets.tensorrt_engine import make_logger, make_runtime

        self.trt, self.path = trt, Path(engine_path)
        self.logger = make_logger(trt)
        self.runtime = make_runtime(trt, self.logger, version_compatible, dla_core)  # outlives the engine
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:  # e.g. "version tag does not match": preflight should have said why first
            why = self.logger.errors[-1] if self.logger.errors else "no error logged"
            raise EdgekitFailure(f"TensorRT {trt.__version__} cannot load {self.path.name}: {why}")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]
        self.runner = PolygraphyTrtRunner(self.engine, optimization_profile=profile_index)
        self.runner.activate()

    def infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        out = self.runner.infer(feeds)
        return [np.asarray(out[n]) for n in self.output_names]

    def layer_times(self, feeds: dict[str, np.ndarray], iters: int = 20, warmup: int = 5) -> dict[str, float]:
        """Median ms per layer over ``iters`` runs after ``warmup`` (TensorRT's IProfiler)."""
        trt = self.trt
        times: dict[str, list[float]] = {}

        class Profiler(trt.IProfiler):
            def __init__(self):
                trt.IProfiler.__init__(self)

            def report_layer_time(self, layer_name, ms):
                times.setdefault(layer_name, []).append(ms)

        for _ in range(warmup):
            self.infer(feeds)
        self.runner.context.profiler = Profiler()
        try:
            for _ in range(iters):
                self.infer(feeds)
        finally:
            self.runner.context.profiler = None
        return {name: float(np.median(ms)) for name, ms in times.items()}

    def layer_info(self) -> list[dict]:
        """The engine inspector's layers (name, type, tactic, ONNX nodes), in execution order."""
        from edgekit.targets.tensorrt_layers import parse_layer_info

        inspector = self.engine.create_engine_inspector()
        inspector.execution_context = self.runner.context
        return parse_layer_info(inspector.get_engine_information(self.trt.LayerInformationFormat.JSON))

    def profile(self, feeds: list[dict], iters: int = 10, warmup: int = 2) -> dict:
        """Per-layer records in edgekit.profiling's format (what ``edgekit profile`` aggregates)."""
        times = self.layer_times(feeds[0], iters, warmup)
        nodes = {layer["name"]: layer["onnx_nodes"] for layer in self.layer_info()}
        records = [{"name": n, "op_type": "TensorRT layer", "kernel": "", "time_ms": t, "calls": 1,
                    "onnx_nodes": nodes.get(n, [])} for n, t in times.items()]
        return {"profiler": "tensorrt IProfiler", "statistic": "median", "iterations": iters, "records": records,
                "memory": {"device_activation_mb": self.engine.device_memory_size_v2 / 2**20}}

    def layer_report(self, feeds: dict[str, np.ndarray], onnx_path: Path, iters: int = 20) -> dict:
        """Per-layer times mapped to ONNX nodes and PyTorch modules, and the attention audit."""
        import onnx

        from edgekit.targets.tensorrt_layers import audit_attention, find_attention_blocks, map_layers

        model = onnx.load(str(onnx_path), load_external_data=False)
        rows = map_layers(self.layer_info(), model, self.layer_times(feeds, iters))
        return {"layers": rows, "attention": audit_attention(find_attention_blocks(model), rows)}

    def close(self) -> None:
        self.runner.deactivate()

