"""LiteRT's op profiler, in a process of its own: ``python litert_profile.py MODEL FEEDS.npz ITERS WARMUP`` prints
the profile summary LiteRT itself writes (TensorFlow Lite's per-operator table) on stdout.

The ``ai-edge-litert`` wheel's Python interpreter has no profiler; its ``libLiteRt.so`` has one in the C API
(``LiteRtCompiledModelGetProfiler``, switched on by the ``enable_profiling`` runtime option). This script reaches
it through ctypes. A mistake in a ctypes signature ends a process, so the engine runs this one apart from its own
(:meth:`edgekit.engines.litert.LiteRtEngine.profile`). Standard library and numpy only."""
from __future__ import annotations

import ctypes as C
import os
import sys

import numpy as np

P = C.c_void_p
CPU = 1  # kLiteRtHwAcceleratorCpu
HOST_MEMORY = 1  # kLiteRtTensorBufferTypeHostMemory
WRITE = 1  # kLiteRtTensorBufferLockModeWrite


def main(model_path: str, feeds_path: str, iters: int, warmup: int) -> str:
    import ai_edge_litert

    lib = C.CDLL(os.path.join(os.path.dirname(ai_edge_litert.__file__), "libLiteRt.so"))
    libc = C.CDLL(None)
    libc.strdup.restype, libc.strdup.argtypes = P, [C.c_char_p]
    lib.LiteRtCreateOpaqueOptions.argtypes = [C.c_char_p, P, P, C.POINTER(P)]

    def ok(status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"LiteRT's C API: {what} returned status {status}")

    env, model, opts, opaque, compiled, profiler, sig = (P() for _ in range(7))
    ok(lib.LiteRtCreateEnvironment(0, None, C.byref(env)), "LiteRtCreateEnvironment")
    ok(lib.LiteRtCreateModelFromFile(env, model_path.encode(), C.byref(model)), "LiteRtCreateModelFromFile")
    ok(lib.LiteRtCreateOptions(C.byref(opts)), "LiteRtCreateOptions")
    ok(lib.LiteRtSetOptionsHardwareAccelerators(opts, CPU), "LiteRtSetOptionsHardwareAccelerators")
    ok(lib.LiteRtCreateOpaqueOptions(b"runtime_options_string", libc.strdup(b"enable_profiling = true\n"),
                                     C.cast(libc.free, P), C.byref(opaque)), "LiteRtCreateOpaqueOptions")
    ok(lib.LiteRtAddOpaqueOptions(opts, opaque), "LiteRtAddOpaqueOptions")
    ok(lib.LiteRtCreateCompiledModel(env, model, opts, C.byref(compiled)), "LiteRtCreateCompiledModel")
    ok(lib.LiteRtCompiledModelGetProfiler(compiled, C.byref(profiler)), "LiteRtCompiledModelGetProfiler")
    ok(lib.LiteRtGetModelSignature(model, C.c_size_t(0), C.byref(sig)), "LiteRtGetModelSignature")

    feeds = np.load(feeds_path)
    arrays = [feeds[k] for k in sorted(k for k in feeds.files if k.startswith("input"))]  # input0, input1...

    def buffers(count_fn, tensor_fn, nbytes: list[int]):
        n = C.c_size_t()
        ok(count_fn(sig, C.byref(n)), "signature tensor count")
        out = []
        for i in range(n.value):
            tensor = P()
            ok(tensor_fn(sig, C.c_size_t(i), C.byref(tensor)), "signature tensor")
            ranked = C.create_string_buffer(4096)  # a LiteRtRankedTensorType, opaque here
            ok(lib.LiteRtGetRankedTensorType(tensor, ranked), "LiteRtGetRankedTensorType")
            buf = P()
            ok(lib.LiteRtCreateManagedTensorBuffer(env, HOST_MEMORY, ranked, C.c_size_t(nbytes[i]), C.byref(buf)),
               "LiteRtCreateManagedTensorBuffer")
            out.append(buf)
        return (P * len(out))(*out)

    out_bytes = [int(b) for b in feeds["__output_bytes__"]]
    inputs = buffers(lib.LiteRtGetNumSignatureInputs, lib.LiteRtGetSignatureInputTensorByIndex,
                     [a.nbytes for a in arrays])
    outputs = buffers(lib.LiteRtGetNumSignatureOutputs, lib.LiteRtGetSignatureOutputTensorByIndex, out_bytes)
    for i, a in enumerate(arrays):
        addr = P()
        ok(lib.LiteRtLockTensorBuffer(P(inputs[i]), C.byref(addr), WRITE), "LiteRtLockTensorBuffer")
        a = np.ascontiguousarray(a)
        C.memmove(addr, a.ctypes.data, a.nbytes)
        lib.LiteRtUnlockTensorBuffer(P(inputs[i]))

    def run() -> None:
        ok(lib.LiteRtRunCompiledModel(compiled, C.c_size_t(0), C.c_size_t(len(inputs)), inputs,
                                      C.c_size_t(len(outputs)), outputs), "LiteRtRunCompiledModel")

    for _ in range(warmup):
        run()
    ok(lib.LiteRtStartProfiler(profiler), "LiteRtStartProfiler")
    for _ in range(iters):
        run()
    ok(lib.LiteRtStopProfiler(profiler), "LiteRtStopProfiler")
    summary = C.c_char_p()
    ok(lib.LiteRtGetProfileSummary(profiler, compiled, C.byref(summary)), "LiteRtGetProfileSummary")
    return summary.value.decode(errors="replace")


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
