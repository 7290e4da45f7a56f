"""ONNX Runtime: a session with the bundle's options, and ORT's profiler trace read into per-layer records."""
from __future__ import annotations

import bisect
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .base import Engine, EngineError, first_line


class OrtEngine(Engine):
    """``model``: a path or serialized ONNX bytes. ``options``: ``providers`` (those not available here are
    dropped; CPU when none is left), ``graph_optimization_level`` (an ``ort.GraphOptimizationLevel`` name)."""

    def __init__(self, model, options: dict, threads: int | None = None, profile_dir: Path | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                              options.get("graph_optimization_level", "ORT_ENABLE_ALL"))
        if threads:
            so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.log_severity_level = 3
        if profile_dir is not None:
            so.enable_profiling = True
            so.profile_file_prefix = str(profile_dir / "ort_profile")
            so.optimized_model_filepath = str(profile_dir / "optimized.onnx")  # maps fused layers to ONNX nodes
        available = ort.get_available_providers()
        providers = [p for p in options.get("providers", ["CPUExecutionProvider"]) if p in available]
        self.model, self.options, self.threads = model, options, threads
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, so, providers=providers or ["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types (Fail, InvalidGraph, NotImplemented)
            name = "the model" if isinstance(model, bytes) else Path(model).name
            raise EngineError(f"ONNX Runtime cannot load {name}: {first_line(e)}", first_line(e)) from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def infer(self, feeds: dict) -> list:
        return self.session.run(None, feeds)

    def profile(self, feeds: list[dict], iters: int = 10, warmup: int = 2) -> dict:
        feeds = feeds if isinstance(feeds, list) else [feeds]
        with tempfile.TemporaryDirectory() as tmp:
            profiled = OrtEngine(self.model, self.options, self.threads, Path(tmp))
            return ort_layers(profiled.session, feeds, iters, warmup, Path(tmp) / "optimized.onnx")


# A layer record: {"name", "op_type", "kernel", "time_ms" (per inference: the profile's "statistic", median or
#                  mean, over its iterations), "calls" (per inference),
#                  "onnx_nodes" (names the runtime says it fused into this layer), "inputs"/"outputs" (tensors, ORT)}

def parse_ort_trace(events: list[dict], skip_runs: int) -> tuple[list[dict], dict]:
    """ONNX Runtime's profiler trace (chrome-trace JSON) -> per-layer records over the runs after
    ``skip_runs``; also the arena peak ORT reports. Node events are assigned to the model_run that
    encloses them."""
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                  if e.get("cat") == "Session" and e.get("name") == "model_run")
    runs = runs[skip_runs:]
    per_run: list[dict[str, list]] = [{} for _ in runs]
    meta: dict[str, dict] = {}
    arena = 0
    starts = [r[0] for r in runs]
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        args = e.get("args", {})
        arena = max(arena, int(args.get("mem_arena_held", 0) or 0))
        k = bisect.bisect_right(starts, e["ts"]) - 1
        if k < 0 or e["ts"] > runs[k][1]:
            continue  # a warm-up run's node
        name = e["name"][: -len("_kernel_time")]
        per_run[k].setdefault(name, []).append(e["dur"] / 1000.0)
        meta.setdefault(name, {"op_type": args.get("op_name", "?"), "kernel": args.get("provider", ""),
                               "index": len(meta)})
    records = []
    for name, m in sorted(meta.items(), key=lambda kv: kv[1]["index"]):
        totals = [sum(r[name]) for r in per_run if name in r]
        calls = [len(r[name]) for r in per_run if name in r]
        records.append({"name": name, "op_type": m["op_type"], "kernel": m["kernel"],
                        "time_ms": float(np.median(totals)), "calls": int(np.median(calls)), "onnx_nodes": []})
    return records, {"arena_peak_mb": arena / 2**20} if arena else {}


def attach_ort_io(records: list[dict], optimized_model: Path) -> None:
    """Give each ORT record the input and output tensors of its node in ORT's optimized graph, so the
    host can find which original ONNX nodes it fused. Needs the onnx package; skipped without it."""
    try:
        import onnx
    except ImportError:
        return
    if not optimized_model.is_file():
        return
    graph = onnx.load(str(optimized_model), load_external_data=False).graph
    io = {n.name: ([i for i in n.input if i], [o for o in n.output if o]) for n in graph.node}
    for r in records:
        if r["name"] in io:
            r["inputs"], r["outputs"] = io[r["name"]]


def ort_layers(session, feeds: list[dict], iters: int, warmup: int, optimized_model: Path | None = None) -> dict:
    """Run a session created with profiling enabled; per-layer records from ORT's own profiler."""
    for i in range(warmup + iters):
        session.run(None, feeds[i % len(feeds)])
    trace = session.end_profiling()
    try:
        with open(trace) as f:
            records, memory = parse_ort_trace(json.load(f), warmup)
    finally:
        os.remove(trace)
    if optimized_model is not None:
        attach_ort_io(records, optimized_model)
    return {"profiler": "onnxruntime profiling", "statistic": "median", "iterations": iters, "records": records,
            "memory": memory}
