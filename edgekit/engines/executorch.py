"""ExecuTorch: a ``.pte`` program run by the ``executorch`` wheel's runtime (portable kernels, and the backends
the wheel registers: XNNPACK on this CPU). ``options``: ``inputs`` and ``outputs`` (the bundle's names, in the
program's order). The runtime's threadpool is the process's own: ``threads`` resets it for every engine opened."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Engine, EngineError, first_line, next_of_kind, quiet_native, xnnpack_kind


def portable_lib():
    """The runtime's bindings, imported without the noise they print (cpuinfo probes on stderr)."""
    try:
        with quiet_native():
            from executorch.extension.pybindings import portable_lib as lib
    except ImportError:
        raise EngineError("ExecuTorch is not installed: pip install 'edgekit[executorch]'") from None
    return lib


class ExecuTorchEngine(Engine):
    def __init__(self, model, options: dict, threads: int | None = None):
        lib = portable_lib()
        import torch

        self._torch = torch
        self.model, self.options, self.threads = model, options, threads
        if threads:
            with quiet_native():  # it logs "Resetting threadpool" on stderr
                lib._unsafe_reset_threadpool(int(threads))
        try:
            with quiet_native():
                self.module = (lib._load_for_executorch_from_buffer(model) if isinstance(model, bytes)
                               else lib._load_for_executorch(str(model)))
        except Exception as e:  # the bindings raise RuntimeError with the runtime's error code
            name = "the program" if isinstance(model, bytes) else Path(model).name
            raise EngineError(f"ExecuTorch cannot load {name}: {first_line(e)}", first_line(e)) from None
        self._first = True
        meta = self.module.method_meta("forward")
        self.input_names = list(options.get("inputs") or [f"input{i}" for i in range(meta.num_inputs())])
        self.output_names = list(options.get("outputs") or [f"output{i}" for i in range(meta.num_outputs())])

    def infer(self, feeds: dict) -> list:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in self.input_names]
        try:
            if self._first:  # the first run starts the threadpool, whose cpuinfo probe prints to stderr
                with quiet_native():
                    outs = self.module.forward(args)
                self._first = False
            else:
                outs = self.module.forward(args)
        except Exception as e:
            raise EngineError(f"ExecuTorch failed to run the program: {first_line(e)}", first_line(e)) from None
        return [o.numpy() if hasattr(o, "numpy") else np.asarray(o) for o in outs]

    def profile(self, feeds: list[dict], iters: int = 10, warmup: int = 2) -> dict | None:
        if isinstance(self.model, bytes):
            return None
        try:
            return etdump_layers(self.model, feeds if isinstance(feeds, list) else [feeds], self.input_names, iters,
                                 warmup)
        except Exception as e:  # noqa: BLE001 - a tracer that fails leaves the latency figures standing
            raise EngineError(f"ExecuTorch's event tracer failed: {first_line(e)}", first_line(e)) from None


# XNNPACK's operator names (its ETDump events: "Convolution (NHWC, F32) IGEMM #2") -> the aten ops they run
_XNNPACK_KINDS = {"Convolution": ("convolution",), "Deconvolution": ("convolution",),
                  # 1x1 convolutions run as GEMMs
                  "Fully Connected": ("linear", "addmm", "mm", "convolution"), "Batch Matrix Multiply": ("bmm", "matmul"),
                  "Softmax": ("_softmax", "softmax"), "Max Pooling": ("max_pool2d", "max_pool2d_with_indices"),
                  "Average Pooling": ("avg_pool2d",), "Global Average Pooling": ("mean", "adaptive_avg_pool2d")}


def _records(events: list, calls: list[dict], skip: int) -> list[dict]:
    """ETDump events of one method, in order, as layer records: each portable kernel named after its node, each
    XNNPACK operator after the delegated node of its kind it runs (in order; the others, layout Transposes and
    fused activations, get their module from their neighbours); a delegate without per-operator events is one
    record for its whole subgraph."""
    import statistics

    def ms(event) -> float:
        raw = list(event.perf_data.raw) if event.perf_data is not None else []
        raw = raw[skip:] or raw
        return float(statistics.median(raw)) if raw else 0.0

    records, pending, cursor = [], [], 0

    def next_call(pred) -> dict | None:
        nonlocal cursor
        for i in range(cursor, len(calls)):
            if pred(calls[i]):
                cursor = i + 1
                return calls[i]
        return None

    for event in events:
        name = event.name
        if getattr(event, "is_delegated_op", False):
            pending.append(event)
        elif name == "DELEGATE_CALL":
            call = next_call(lambda c: "delegate" in c)
            nodes = list((call or {}).get("delegate", []))
            if not pending:
                records.append({"name": f"delegate{cursor}", "op_type": "DelegateCall", "kernel": "delegate",
                                "time_ms": ms(event), "calls": 1, "onnx_nodes": [n["name"] for n in nodes]})
            for inner in pending:
                kind = xnnpack_kind(name_of(inner))
                match, nodes = next_of_kind(nodes, _XNNPACK_KINDS.get(kind, ()))
                # XNNPACK numbers its operators per delegate: the delegate's index makes the name unique
                records.append({"name": f"delegate{cursor}:{name_of(inner)}", "op_type": kind, "kernel": "xnnpack",
                                "time_ms": ms(inner),
                                "calls": 1, "onnx_nodes": [match["name"]] if match else []})
            pending = []
        elif name.startswith("native_call_"):
            op = name[len("native_call_"):].split(".")[0]
            call = next_call(lambda c: c.get("op") == op or c.get("op", "").removesuffix("_copy") == op)
            records.append({"name": call["name"] if call else name, "op_type": op, "kernel": "portable",
                            "time_ms": ms(event), "calls": 1, "onnx_nodes": [call["name"]] if call else []})
    return records


def name_of(event) -> str:
    return event.delegate_debug_identifier if isinstance(event.delegate_debug_identifier, str) else event.name


def etdump_layers(model, feeds: list[dict], input_names: list[str], iters: int, warmup: int) -> dict:
    """Per-operator times from ExecuTorch's event tracer (ETDump, read by its devtools Inspector) over ``iters``
    runs after ``warmup``; module paths from the bundle's program map (executorch.json beside the program)."""
    import json
    import tempfile

    import torch

    lib = portable_lib()
    with quiet_native():
        from executorch.devtools import Inspector

        module = lib._load_for_executorch(str(model), enable_etdump=True)
        for i in range(warmup + iters):
            feed = feeds[i % len(feeds)]
            module.forward([torch.from_numpy(np.ascontiguousarray(feed[n])) for n in input_names])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "run.etdp"
            module.write_etdump_result_to_file(str(path))
            inspector = Inspector(etdump_path=str(path))
    block = next((b for b in inspector.event_blocks if b.name == "Execute"), None)
    side = Path(model).parent / "executorch.json"
    calls = json.loads(side.read_text()).get("program", {}).get("calls", []) if side.exists() else []
    records = _records(block.events if block else [], calls, warmup)
    return {"profiler": "executorch etdump", "statistic": "median", "iterations": iters, "records": records,
            "memory": {}}
