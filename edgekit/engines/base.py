"""What every engine offers; imports only the standard library."""
from __future__ import annotations

import contextlib
import io
import os
import time


class EngineError(RuntimeError):
    """A runtime refused a model or a run; the message is one line. ``detail`` is the runtime's own first line."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail or message


def first_line(e: BaseException, limit: int = 400) -> str:
    s = str(e).strip()
    return s.splitlines()[0][:limit] if s else e.__class__.__name__


class Engine:
    """A model opened on one runtime. Subclasses set ``input_names`` and ``output_names`` in ``__init__`` and
    implement :meth:`infer`; :meth:`profile` returns None where the runtime has no profiler."""

    input_names: list[str]
    output_names: list[str]

    @classmethod
    def open(cls, model, options: dict | None = None, threads: int | None = None) -> Engine:
        return cls(model, options or {}, threads)

    def infer(self, feeds: dict) -> list:
        raise NotImplementedError

    def infer_named(self, feeds: dict, names) -> list:
        """:meth:`infer`'s outputs in the order of ``names`` (the manifest's), matched by name where the artifact
        has them all; a runtime whose names differ (CoreML's) is taken in its own order."""
        outs = self.infer(feeds)
        names = list(names)
        if len(outs) > 1 and names != list(self.output_names) and set(names) <= set(self.output_names):
            index = {n: i for i, n in enumerate(self.output_names)}
            return [outs[index[n]] for n in names]
        return outs

    def time(self, feeds: dict, warmup: int = 5, iters: int = 30) -> list[float]:
        """Latencies in ms of ``iters`` runs after ``warmup``."""
        for _ in range(warmup):
            self.infer(feeds)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            self.infer(feeds)
            times.append((time.perf_counter() - t0) * 1e3)
        return times

    def profile(self, feeds: list[dict], iters: int = 10, warmup: int = 2) -> dict | None:
        """Per-layer times from the runtime's own profiler over ``iters`` runs (rotating through ``feeds``)
        after ``warmup``, on a separate profiling session, never the timed one:
        {"profiler", "statistic", "iterations", "memory", "records": [{"name", "op_type", "kernel",
        "time_ms" (per inference), "calls", "onnx_nodes"}]}; None when the runtime has no profiler."""
        return None

    def close(self) -> None:
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def quiet_native():
    """Silence what native code prints to file descriptor 2 (cpuinfo probes, absl's and TensorFlow Lite's INFO
    lines) and Python's stderr (progress bars) for the duration; restored even when the body raises."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def xnnpack_kind(operator: str) -> str:
    """XNNPACK's operator kind from a profiled name: "Convolution (NHWC, F32) IGEMM #2" -> "Convolution"."""
    return operator.split(" (")[0].split(" #")[0].strip()


def next_of_kind(pending: list[dict], ops: tuple) -> tuple[dict | None, list[dict]]:
    """XNNPACK runs a delegated subgraph's operators in the graph's order, so a profiled operator is the next
    graph op (``pending``, each with an "op") of its kind: that op and the ops after it, or ``(None, pending)``
    when none is (a layout transpose, a fused activation)."""
    hit = next((o for o in pending if o["op"] in ops), None) if ops else None
    return (hit, pending[pending.index(hit) + 1:]) if hit is not None else (None, pending)
