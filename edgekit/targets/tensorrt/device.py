"""What this machine offers TensorRT: the library (builder + ONNX parser), its plugin API, and the NVIDIA GPUs.

Probed by capability, not by version number: the builder and ONNX parser with strongly typed networks
(TensorRT 10.x, JetPack 6's 10.3 included), and, for edgekit's plugin kernels, ahead-of-time Python plugins
(``tensorrt.plugin.aot_impl``, ``trt.QuickPluginCreationRequest``: TensorRT >= 10.9) with Triton to compile
them. Without the latter an engine is still built, with the plugin nodes' ONNX function bodies.

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
# What edgekit builds with (strongly typed networks, the TensorRT 10 API: JetPack 6's 10.3 is the oldest in
# use), and what its plugin kernels need (ahead-of-time Python plugins).
MIN_TENSORRT = "10.3"
MIN_TENSORRT_AOT_PLUGINS = "10.9"


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
    NVIDIA GPUs the CUDA driver reports, empty with ``gpu_problem`` saying why; aot_plugins_problem: None
    when edgekit's plugins can be built ahead of time here, else why not (see :func:`aot_plugin_problem`)."""

    tensorrt: str | None
    tensorrt_problem: str | None
    gpus: tuple[Gpu, ...]
    gpu_problem: str | None
    machine: str
    aot_plugins_problem: str | None = "not probed"

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


def library_problem(trt) -> str | None:
    """None when the imported ``tensorrt`` module can build edgekit's engines (a builder, the ONNX parser and
    strongly typed networks: TensorRT 10.x and 11.x), else why not."""
    version = getattr(trt, "__version__", "?")
    if not (hasattr(trt, "Builder") and hasattr(trt, "OnnxParser")):
        return f"the installed tensorrt {version} has no builder or ONNX parser"
    flags = getattr(trt, "NetworkDefinitionCreationFlag", None)
    if not hasattr(flags, "STRONGLY_TYPED"):
        return f"TensorRT {version} has no strongly typed networks; edgekit needs TensorRT >= {MIN_TENSORRT}"
    return None


def aot_plugin_problem(trt) -> str | None:
    """None when the imported ``tensorrt`` module can build edgekit's plugins ahead of time, else why not.

    Needs ``trt.QuickPluginCreationRequest`` (the builder asks a Python plugin for its AOT implementation),
    ``tensorrt.plugin.aot_impl`` and ``KernelLaunchParams`` (TensorRT >= 10.9; JetPack 6's 10.3 has no
    ``tensorrt.plugin``, 10.7's only has plugins that run Python at inference), and Triton, which compiles
    the kernels at engine build.
    """
    version = getattr(trt, "__version__", "?")
    name = getattr(trt, "__name__", "tensorrt")
    if not hasattr(trt, "QuickPluginCreationRequest"):
        try:
            has_package = importlib.util.find_spec(f"{name}.plugin") is not None
        except (ImportError, ValueError):
            has_package = False
        what = "only Python plugins that run Python at inference" if has_package else "no tensorrt.plugin"
        return f"TensorRT {version} has {what}; ahead-of-time plugins need TensorRT >= {MIN_TENSORRT_AOT_PLUGINS}"
    try:
        trtp = importlib.import_module(f"{name}.plugin")
    except Exception as e:  # noqa: BLE001 (ImportError, or whatever the package raises while importing)
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        return f"TensorRT {version}'s tensorrt.plugin does not import ({first[:160]})"
    missing = [n for n in ("aot_impl", "KernelLaunchParams", "SymInt32") if not hasattr(trtp, n)]
    if missing:
        return (f"TensorRT {version}'s tensorrt.plugin has no {', '.join(missing)}; ahead-of-time plugins need "
                f"TensorRT >= {MIN_TENSORRT_AOT_PLUGINS}")
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed (it compiles the plugin kernels at engine build): pip install triton"
    return None


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
    problem = library_problem(trt)
    return (None, problem) if problem else (str(trt.__version__), None)


@functools.lru_cache(maxsize=1)
def probe() -> TrtEnvironment:
    version, trt_problem = probe_tensorrt()
    aot_problem = aot_plugin_problem(importlib.import_module("tensorrt")) if version else trt_problem
    gpus, gpu_problem = probe_gpus()
    return TrtEnvironment(version, trt_problem, gpus, gpu_problem, platform.machine(), aot_problem)


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
        return (f"target trt needs TensorRT >= {MIN_TENSORRT} with its ONNX parser ({env.tensorrt_problem}): {INSTALL} "
                f"(PyPI's tensorrt fetches the libraries from NVIDIA's index), {ONNX_ONLY_HINT}")
    return (f"target trt needs an NVIDIA GPU to build on ({env.gpu_problem}; TensorRT {env.tensorrt} is installed): "
            f"run the export on the device, {ONNX_ONLY_HINT}")
