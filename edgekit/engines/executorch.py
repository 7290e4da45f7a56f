"""ExecuTorch: a ``.pte`` program run by the ``executorch`` wheel's runtime (portable kernels, and the backends
the wheel registers: XNNPACK on this CPU). ``options``: ``inputs`` and ``outputs`` (the bundle's names, in the
program's order). The runtime's threadpool is the process's own: ``threads`` resets it for every engine opened."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Engine, EngineError, first_line, quiet_native


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
