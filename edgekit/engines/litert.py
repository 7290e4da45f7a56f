"""LiteRT (TensorFlow Lite's runtime, the ``ai-edge-litert`` wheel): a ``.tflite`` model on the interpreter's CPU
kernels with the XNNPACK delegate, which the interpreter applies by default. ``options``: ``inputs`` and
``outputs`` (the bundle's names, in the model signature's order).

An int8 model converted from PT2E may take int8 input and give int8 outputs; the engine quantizes a float input
and dequantizes the outputs with the scales the model carries, so every bundle takes and gives float32 here."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .base import Engine, EngineError, first_line, quiet_native


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
