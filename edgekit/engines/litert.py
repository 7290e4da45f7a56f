"""LiteRT (TensorFlow Lite's runtime, the ``ai-edge-litert`` wheel): a ``.tflite`` model on the interpreter's CPU
kernels with the XNNPACK delegate, which the interpreter applies by default. ``options``: ``inputs`` and
``outputs`` (the bundle's names, in the model signature's order).

An int8 model converted from PT2E may take int8 input and give int8 outputs; the engine quantizes a float input
and dequantizes the outputs with the scales the model carries, so every bundle takes and gives float32 here."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .base import Engine, EngineError, first_line, next_of_kind, quiet_native, xnnpack_kind


def interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise EngineError("LiteRT is not installed: pip install 'edgekit[litert]'") from None
    return Interpreter


def _index(key: str) -> tuple[int, str]:
    """Signature keys in order: 'output_10' after 'output_2'."""
    match = re.search(r"(\d+)$", key)
    return (int(match.group(1)) if match else -1, key)


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return np.ascontiguousarray(x, dtype=dtype)
    q = detail["quantization_parameters"]
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / q["scales"][0]) + q["zero_points"][0], info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if not np.issubdtype(np.dtype(detail["dtype"]), np.integer):
        return np.asarray(y, dtype=np.float32)
    q = detail["quantization_parameters"]
    return ((y.astype(np.float32) - q["zero_points"][0]) * q["scales"][0]).astype(np.float32)


class LiteRtEngine(Engine):
    def __init__(self, model, options: dict, threads: int | None = None):
        Interpreter = interpreter_class()
        self.model, self.options, self.threads = model, options, threads
        kw = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
        try:
            with quiet_native():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self.interpreter = Interpreter(num_threads=threads or None, **kw)
                self.runner = self.interpreter.get_signature_runner()
        except Exception as e:  # the interpreter raises ValueError / RuntimeError with its own message
            name = "the model" if isinstance(model, bytes) else Path(model).name
            raise EngineError(f"LiteRT cannot load {name}: {first_line(e)}", first_line(e)) from None
        self._first = True
        self._in = self.runner.get_input_details()
        self._out = self.runner.get_output_details()
        self._in_keys = sorted(self._in, key=_index)
        self._out_keys = sorted(self._out, key=_index)
        self.input_names = list(options.get("inputs") or self._in_keys)
        self.output_names = list(options.get("outputs") or self._out_keys)

    def infer(self, feeds: dict) -> list:
        args = {key: quantize(feeds[name], self._in[key]) for name, key in zip(self.input_names, self._in_keys)}
        try:
            if self._first:  # the XNNPACK delegate is applied on the first run, and says so on stderr
                with quiet_native():
                    out = self.runner(**args)
                self._first = False
            else:
                out = self.runner(**args)
        except Exception as e:
            raise EngineError(f"LiteRT failed to run the model: {first_line(e)}", first_line(e)) from None
        return [dequantize(out[key], self._out[key]) for key in self._out_keys]

    def profile(self, feeds: list[dict], iters: int = 10, warmup: int = 2) -> dict | None:
        """LiteRT's own op profiler (litert_profile.py, in a process of its own) over ``iters`` runs after
        ``warmup``, its rows mapped to modules through the bundle's op map (litert.json beside the model)."""
        import json
        import subprocess
        import sys
        import tempfile

        if isinstance(self.model, bytes):
            return None
        feed = (feeds if isinstance(feeds, list) else [feeds])[0]
        arrays = {f"input{i}": quantize(feed[name], self._in[key])
                  for i, (name, key) in enumerate(zip(self.input_names, self._in_keys))}
        out_bytes = [int(np.prod(self._out[k]["shape"])) * np.dtype(self._out[k]["dtype"]).itemsize
                     for k in self._out_keys]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "feeds.npz"
            np.savez(path, **arrays, __output_bytes__=np.asarray(out_bytes, np.int64))
            proc = subprocess.run([sys.executable, str(Path(__file__).with_name("litert_profile.py")),
                                   str(self.model), str(path), str(iters), str(warmup)],
                                  capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1][:300]
            raise EngineError(f"LiteRT's op profiler failed: {tail}", tail)
        side = Path(self.model).parent / "litert.json"
        ops = json.loads(side.read_text()).get("op_map", []) if side.exists() else []
        return {"profiler": "litert op profiler", "statistic": "mean", "iterations": iters,
                "records": parse_summary(proc.stdout, ops), "memory": {}}


# XNNPACK's operator names (LiteRT's profile rows "Delegate/Convolution (NHWC, F32) IGEMM") -> the .tflite ops
_XNNPACK_KINDS = {"Convolution": ("CONV_2D", "DEPTHWISE_CONV_2D"), "Deconvolution": ("TRANSPOSE_CONV",),
                  "Fully Connected": ("FULLY_CONNECTED",), "Batch Matrix Multiply": ("BATCH_MATMUL",),
                  "Softmax": ("SOFTMAX",), "Mean": ("MEAN",), "Max Pooling": ("MAX_POOL_2D",),
                  "Average Pooling": ("AVERAGE_POOL_2D",), "GELU": ("GELU",), "HardSwish": ("HARD_SWISH",)}


def parse_summary(text: str, ops: list[dict]) -> list[dict]:
    """LiteRT's profile summary (its "Run Order" table) -> layer records. A row the model's own kernels ran names
    its op index; an XNNPACK row ("Delegate/...") is matched, in order, to the next .tflite op of its kind, and
    the rest (layout transposes, reshapes) take their module from their neighbours. ``ops``: the bundle's op map
    (index, op, ONNX-style name), made at export."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "Run Order" in line), None)
    if start is None:
        return []
    by_index = {o["index"]: o for o in ops}
    pending = list(ops)
    records = []
    for line in lines[start + 2:]:
        if not line.strip() or line.lstrip().startswith("="):
            break
        match = re.match(r"\s*(.+?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)\s+(\d+)\s+(.+)$",
                         line)
        if not match:
            continue
        node_type, avg_ms, name = match.group(1), float(match.group(4)), match.group(9).strip()
        if node_type.startswith("Delegate/"):
            kind = xnnpack_kind(node_type[len("Delegate/"):])
            hit, pending = next_of_kind(pending, _XNNPACK_KINDS.get(kind, ()))
            records.append({"name": f"{name} {node_type[len('Delegate/'):]}", "op_type": kind, "kernel": "xnnpack",
                            "time_ms": avg_ms, "calls": 1, "onnx_nodes": [hit["name"]] if hit else []})
        else:
            index = re.search(r":(\d+)$", name)
            op = by_index.get(int(index.group(1))) if index else None
            records.append({"name": op["name"] if op else name, "op_type": node_type, "kernel": "litert",
                            "time_ms": avg_ms, "calls": 1, "onnx_nodes": [op["name"]] if op else []})
    return records
