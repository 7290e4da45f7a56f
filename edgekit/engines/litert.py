"""LiteRT (TensorFlow Lite's runtime, the ``ai-edge-litert`` wheel): a ``.tflite`` model on the interpreter's CPU
kernels with the XNNPACK delegate, which the interpreter applies by default. ``options``: ``inputs`` and
``outputs`` (the bundle's names, in the model's signature order)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Engine, EngineError, first_line


def interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise EngineError("LiteRT is not installed: pip install 'edgekit[litert]'") from None
    return Interpreter


class LiteRtEngine(Engine):
    def __init__(self, model, options: dict, threads: int | None = None):
        Interpreter = interpreter_class()
        self.model, self.options, self.threads = model, options, threads
        kw = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
        try:
            self.interpreter = Interpreter(num_threads=threads or None, **kw)
            self.interpreter.allocate_tensors()
        except Exception as e:  # the interpreter raises ValueError / RuntimeError with its own message
            name = "the model" if isinstance(model, bytes) else Path(model).name
            raise EngineError(f"LiteRT cannot load {name}: {first_line(e)}", first_line(e)) from None
        self._in = self.interpreter.get_input_details()
        self._out = self.interpreter.get_output_details()
        self.input_names = list(options.get("inputs") or [d["name"] for d in self._in])
        self.output_names = list(options.get("outputs") or [d["name"] for d in self._out])

    def infer(self, feeds: dict) -> list:
        it = self.interpreter
        for name, detail in zip(self.input_names, self._in):
            x = np.ascontiguousarray(feeds[name], dtype=detail["dtype"])
            if tuple(x.shape) != tuple(detail["shape"]):
                it.resize_tensor_input(detail["index"], list(x.shape))
                it.allocate_tensors()
                self._out = it.get_output_details()
            it.set_tensor(detail["index"], x)
        try:
            it.invoke()
        except Exception as e:
            raise EngineError(f"LiteRT failed to run the model: {first_line(e)}", first_line(e)) from None
        return [it.get_tensor(d["index"]).copy() for d in self._out]
