"""OpenVINO: a model compiled for a device with an explicit inference precision, and its performance counters.

OpenVINO's CPU plugin runs in bf16 by default on CPUs with AVX512-BF16, silently changing results, so the
precision hint is always set; a device without the recorded precision's compute runs f32.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Engine, EngineError, first_line

_CAPABILITY = {"f32": "FP32", "f16": "FP16", "bf16": "BF16"}
PER_SHAPE_CACHE = 4  # static compiles kept per engine for a dynamic model (a camera, a tile size, ...)


def device_supports(device: str, hint: str) -> bool:
    import openvino as ov

    return _CAPABILITY[hint] in ov.Core().get_property(device, "OPTIMIZATION_CAPABILITIES")


class OvEngine(Engine):
    """``model``: an IR ``.xml`` (or anything ``Core.read_model`` reads) path, or an ``openvino.Model``.
    ``options``: ``device`` (CPU), ``inference_precision`` (f32, f16 or bf16)."""

    def __init__(self, model, options: dict, threads: int | None = None, perf_counters: bool = False):
        import openvino as ov

        core = ov.Core()
        self.device = options.get("device", "CPU")
        hint = options.get("inference_precision", "f32")
        if hint != "f32" and not device_supports(self.device, hint):
            hint = "f32"  # the device lacks that compute
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if perf_counters:
            config["PERF_COUNT"] = True
        self.model, self.options, self.threads, self.hint = model, options, threads, hint
        self._core, self._config = core, config
        try:
            self._read = core.read_model(str(model)) if isinstance(model, (str, Path)) else model
        except RuntimeError as e:
            raise EngineError(f"OpenVINO cannot read {Path(model).name}: {first_line(e)}", first_line(e)) from None
        self.compiled = self._compile(self._read)
        self.request = self.compiled.create_infer_request()
        self.input_names = [p.get_any_name() for p in self.compiled.inputs]
        self.output_names = [p.get_any_name() for p in self.compiled.outputs]
        # a model with a dynamic height and width (a shape envelope): OpenVINO's CPU kernels for dynamic shapes
        # ran 7-9% slower at the same size than a static compile (scripts/bench_shapes.py), so each size seen is
        # compiled static on first use and kept (the few most recent)
        self._dynamic = len(self._read.inputs) == 1 and not self._read.inputs[0].get_partial_shape().is_static
        self._per_shape: dict[tuple, tuple] = {}

    def _compile(self, model):
        try:
            return self._core.compile_model(model, self.device, self._config)
        except RuntimeError as e:
            name = Path(self.model).name if isinstance(self.model, (str, Path)) else "the model"
            raise EngineError(f"OpenVINO cannot compile {name} for {self.device}: {first_line(e)}",
                              first_line(e)) from None

    def _request_for(self, feeds: dict):
        """(compiled model, infer request) for the feeds' input shape: the static compile of that size, for a
        dynamic model; the one compiled model otherwise."""
        if not self._dynamic:
            return self.compiled, self.request
        shape = tuple(np.shape(next(iter(feeds.values()))))
        hit = self._per_shape.pop(shape, None)
        if hit is None:
            static = self._read.clone()
            static.reshape({static.inputs[0].get_any_name(): list(shape)})
            compiled = self._compile(static)
            hit = (compiled, compiled.create_infer_request())
            while len(self._per_shape) >= PER_SHAPE_CACHE:
                self._per_shape.pop(next(iter(self._per_shape)))
        self._per_shape[shape] = hit  # most recent last
        return hit

    def infer(self, feeds: dict) -> list:
        _, request = self._request_for(feeds)
        request.infer(feeds)
        return [np.array(request.get_output_tensor(i).data) for i in range(len(self.output_names))]

    def profile(self, feeds: list[dict], iters: int = 10, warmup: int = 2) -> dict:
        feeds = feeds if isinstance(feeds, list) else [feeds]
        profiled = OvEngine(self.model, self.options, self.threads, perf_counters=True)
        compiled, request = profiled._request_for(feeds[0])
        return ov_layers(compiled, request, feeds, iters, warmup)


def _ov_averages(request) -> dict:
    return {p.node_name: (p.real_time.total_seconds() * 1e3, p.node_type, p.exec_type)
            for p in request.profiling_info if str(p.status).split(".")[-1] == "EXECUTED"}


def ov_layers(compiled, request, feeds: list[dict], iters: int, warmup: int) -> dict:
    """OpenVINO performance counters (PERF_COUNT) over ``iters`` inferences after ``warmup``.

    The CPU plugin reports each layer's *running average since compilation* (first inference,
    weight repacking and warm-up included), so the profiled window's mean is recovered from the
    averages read after warm-up and at the end: (avg_end * (w + n) - avg_w * w) / n. The runtime
    model's ``originalLayersNames`` names the IR (= ONNX) nodes each executed layer fused."""
    for i in range(warmup):
        request.infer(feeds[i % len(feeds)])
    before = _ov_averages(request) if warmup else {}
    for i in range(iters):
        request.infer(feeds[i % len(feeds)])
    after = _ov_averages(request)
    fused = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "originalLayersNames" in info:
            fused[op.get_friendly_name()] = [s for s in info["originalLayersNames"].astype(str).split(",") if s]
    records = []
    for name, (avg, node_type, exec_type) in after.items():
        total = avg * (warmup + iters) - before.get(name, (0.0,))[0] * warmup
        records.append({"name": name, "op_type": node_type, "kernel": exec_type, "time_ms": max(total / iters, 0.0),
                        "calls": 1, "onnx_nodes": fused.get(name, [])})
    return {"profiler": "openvino performance counters", "statistic": "mean", "iterations": iters, "records": records,
            "memory": {}}
