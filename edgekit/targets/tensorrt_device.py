"""What this machine offers TensorRT: the library (builder + ONNX parser) and the NVIDIA GPUs.

GPUs are read from the CUDA driver API (``libcuda``: cuInit, cuDeviceGetCount, cuDeviceGetName,
cuDeviceGetAttribute) through ctypes, so the answer does not depend on how PyTorch was built (a
CPU-only torch on a GPU server sees no GPU). Nothing here needs TensorRT to import.

This file is also copied into ``--onnx-only`` bundles beside the engine build script, so it imports
nothing from edgekit.
"""
from __future__ import annotations

import ctypes
import functools
import importlib
import importlib.util
import platform
import sys
from dataclasses import dataclass

# CUdevice_attribute values from cuda.h
_CC_MAJOR, _CC_MINOR = 75, 76


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_capability: str  # "8.7"

    @property
    def cc(self) -> tuple[int, int]:
        major, minor = self.compute_capability.split(".")
        return int(major), int(minor)


@dataclass(frozen=True)
class TrtEnvironment:
    """tensorrt: the full TensorRT's version, or None with ``tensorrt_problem`` saying why; gpus: the
    NVIDIA GPUs the CUDA driver reports, empty with ``gpu_problem`` saying why."""

    tensorrt: str | None
    tensorrt_problem: str | None
    gpus: tuple[Gpu, ...]
    gpu_problem: str | None
    machine: str

    @property
    def gpu(self) -> Gpu | None:
        return self.gpus[0] if self.gpus else None

    @property
    def can_build(self) -> bool:
        return self.tensorrt is not None and self.gpu is not None


def _driver():
    names = ("nvcuda.dll",) if sys.platform.startswith("win") else ("libcuda.so.1", "libcuda.so")
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def probe_gpus() -> tuple[tuple[Gpu, ...], str | None]:
    """(GPUs, None) or ((), why there are none)."""
    lib = _driver()
    if lib is None:
        return (), "no NVIDIA driver (libcuda.so.1 not found)"
    if lib.cuInit(0) != 0:
        return (), "the NVIDIA driver found no usable GPU (cuInit failed)"
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return (), "the NVIDIA driver reports no GPU"
    gpus = []
    for i in range(count.value):
        dev, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
        name = ctypes.create_string_buffer(256)
        lib.cuDeviceGet(ctypes.byref(dev), i)
        lib.cuDeviceGetName(name, 256, dev)
        lib.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, dev)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, dev)
        gpus.append(Gpu(i, name.value.decode(errors="replace"), f"{major.value}.{minor.value}"))
    return tuple(gpus), None


def probe_tensorrt() -> tuple[str | None, str | None]:
    """(version, None) when the full TensorRT (builder and ONNX parser) imports, else (None, why)."""
    if importlib.util.find_spec("tensorrt") is None:
        if importlib.util.find_spec("tensorrt_lean") is not None:
            return None, "only the TensorRT lean runtime is installed (no builder or ONNX parser)"
        return None, "TensorRT is not installed"
    try:
        trt = importlib.import_module("tensorrt")
    except (ImportError, OSError) as e:  # the bindings without the libraries: libnvinfer not found
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        return None, f"TensorRT's Python bindings are installed but its libraries do not load ({first[:160]})"
    if not (hasattr(trt, "Builder") and hasattr(trt, "OnnxParser")):
        return None, f"the installed tensorrt {getattr(trt, '__version__', '?')} has no builder or ONNX parser"
    return str(trt.__version__), None


@functools.lru_cache(maxsize=1)
def probe() -> TrtEnvironment:
    version, trt_problem = probe_tensorrt()
    gpus, gpu_problem = probe_gpus()
    return TrtEnvironment(version, trt_problem, gpus, gpu_problem, platform.machine())


INSTALL = "pip install 'edgekit[trt]'"
ONNX_ONLY_HINT = ("or pass --onnx-only to write the TensorRT-flavoured ONNX, the plugin library and a ready "
                  "trtexec command into the bundle and build the engine on the device")


def missing_message(env: TrtEnvironment) -> str | None:
    """One line saying which of TensorRT and the GPU is missing and how to get it; None when both are here."""
    if env.can_build:
        return None
    if env.tensorrt is None and env.gpu is None:
        return (f"target trt needs TensorRT and an NVIDIA GPU; this machine has neither ({env.gpu_problem}; "
                f"{env.tensorrt_problem}): run the export on the device after {INSTALL}, {ONNX_ONLY_HINT}")
    if env.tensorrt is None:
        return (f"target trt needs TensorRT >= 10.7 with its ONNX parser ({env.tensorrt_problem}): {INSTALL} "
                f"(PyPI's tensorrt fetches the libraries from NVIDIA's index), {ONNX_ONLY_HINT}")
    return (f"target trt needs an NVIDIA GPU to build on ({env.gpu_problem}; TensorRT {env.tensorrt} is installed): "
            f"run the export on the device, {ONNX_ONLY_HINT}")
