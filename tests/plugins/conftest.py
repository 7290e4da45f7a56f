"""Fixtures for the plugin tests: where Triton kernels run, ONNX Runtime / OpenVINO runners, TensorRT's API.

Triton kernels run compiled on an NVIDIA GPU when torch sees one, else in Triton's interpreter on the CPU
(``TRITON_INTERPRET=1``, set here, before any test module imports a kernel).

``tensorrt_plugin_api``: TensorRT cannot be installed on these machines, but the ``tensorrt.plugin``
package is plain Python. Point ``EDGEKIT_TRT_PLUGIN_SRC`` at it (from the bindings wheel:
``pip download --no-deps tensorrt-cu13-bindings`` then unzip; the folder ``tensorrt_bindings/plugin``) and
the registration tests load that real source over a stand-in for TensorRT's compiled core, so the plugin
API's own signature checks run against our decorated functions. Without it they skip.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
import torch

ON_GPU = torch.cuda.is_available()
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9's default, stated to silence its warning


@pytest.fixture(scope="session")
def device() -> str:
    """Device the Triton kernels run on: "cuda" (compiled) or "cpu" (interpreter)."""
    return "cuda" if ON_GPU else "cpu"


# Kernels the AOT tests compile to PTX for sm_80: (op folder, dtype, seq_len, head_dim, scale or eps).
AOT_SPECS = (
    ("window_attention", "fp16", 144, 32, 0.17),
    ("window_attention", "fp32", 144, 32, 0.17),
    ("linear_attention", "fp16", 256, 16, 1e-6),
    ("linear_attention", "fp32", 256, 16, 1e-6),
)
_AOT_SCRIPT = """
import dataclasses, importlib, json, sys
from triton.backends.compiler import GPUTarget
results = []
for folder, dtype, seq_len, head_dim, attribute in json.loads(sys.argv[1]):
    module = importlib.import_module(f"edgekit.plugins.{folder}.trt_plugin")
    config, kernel = module.compile_kernel(dtype, seq_len, head_dim, attribute, target=GPUTarget("cuda", 80, 32))
    results.append([dataclasses.asdict(config), dataclasses.asdict(kernel)])
with open(sys.argv[2], "w") as f:
    json.dump(results, f)
"""


@pytest.fixture(scope="session")
def aot_kernels() -> dict:
    """AOT_SPECS -> (launch config, CompiledKernel), compiled by Triton for sm_80 on this (GPU-less) machine.

    Compiled in a child process without TRITON_INTERPRET: once the interpreter has run a kernel in a process,
    Triton's compiler no longer works in it. One process for all specs (~4 s each, cached by Triton after).
    """
    from edgekit.plugins.linear_attention.launch_params import LinearAttentionConfig
    from edgekit.plugins.tensorrt_aot import CompiledKernel
    from edgekit.plugins.window_attention.launch_params import WindowAttentionConfig

    configs = {"window_attention": WindowAttentionConfig, "linear_attention": LinearAttentionConfig}
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "kernels.json"
        proc = subprocess.run(
            [sys.executable, "-c", _AOT_SCRIPT, json.dumps(AOT_SPECS), str(out)],
            env=env, capture_output=True, text=True, timeout=600,
        )
        if proc.returncode:
            raise RuntimeError(f"AOT compile failed:\n{proc.stderr[-4000:]}")
        results = json.loads(out.read_text())
    return {
        spec: (configs[spec[0]](**config), CompiledKernel(**kernel))
        for spec, (config, kernel) in zip(AOT_SPECS, results)
    }


@pytest.fixture(scope="session")
def assert_ptx_assembles():
    """Run ptxas (Triton ships one) on PTX: our trimmed kernel signatures must still be valid PTX."""
    import shutil

    import triton

    bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    ptxas = str(bundled) if bundled.exists() else shutil.which("ptxas")

    def check(ptx: str, arch: str = "sm_80") -> None:
        if ptxas is None:
            pytest.skip("no ptxas to assemble the PTX with")
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "kernel.ptx"
            source.write_text(ptx)
            subprocess.run([ptxas, "--gpu-name", arch, str(source), "-o", str(source.with_suffix(".cubin"))], check=True)

    return check


@pytest.fixture(scope="session")
def run_onnxruntime():
    import onnxruntime as ort

    def run(model, feeds: dict) -> np.ndarray:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return session.run(None, feeds)[0]

    return run


@pytest.fixture(scope="session")
def run_openvino():
    import openvino as ov

    def run(model, feeds: dict) -> np.ndarray:
        core = ov.Core()
        # This CPU defaults to bf16 (AVX512-BF16): ask for f32 explicitly (FACTS pitfall 1).
        compiled = core.compile_model(
            core.read_model(model.SerializeToString(), b""), "CPU",
            {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2},
        )
        return compiled(feeds)[compiled.output(0)]

    return run


# --- a stand-in for TensorRT's compiled core, enough for tensorrt.plugin's Python to import and validate ---

class _StubMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_class(name)


class _Stub(metaclass=_StubMeta):
    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_class(name)()

    def __call__(self, *args, **kwargs):
        return _Stub()


def _stub_class(name: str) -> type:
    return _StubMeta(name, (_Stub,), {})


def _stub_module_attribute(name: str) -> type:
    if name.startswith("__"):  # __file__, __spec__...: inspect and importlib must see a plain module
        raise AttributeError(name)
    return _stub_class(name)


class _DataType:
    """Enum-like members with ``.name``, as ``trt.DataType`` has."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"DataType.{self.name}"


class _DimExpr:
    """A constant ``trt.IDimensionExpr``: lets tensorrt.plugin's symbolic shape arithmetic be evaluated."""

    def __init__(self, value: int):
        self.value = int(value)

    def is_constant(self) -> bool:
        return True

    def get_constant_value(self) -> int:
        return self.value


class _ExprBuilder:
    """Stands in for ``trt.IExprBuilder``: evaluates each DimensionOperation on constants."""

    _OPS = {
        "SUM": lambda a, b: a + b, "SUB": lambda a, b: a - b, "PROD": lambda a, b: a * b,
        "FLOOR_DIV": lambda a, b: a // b, "CEIL_DIV": lambda a, b: -(-a // b), "MAX": max, "MIN": min,
        "EQUAL": lambda a, b: int(a == b), "LESS": lambda a, b: int(a < b),
    }

    def constant(self, value: int) -> _DimExpr:
        return _DimExpr(value)

    def operation(self, op, a: _DimExpr, b: _DimExpr) -> _DimExpr:
        return _DimExpr(self._OPS[op.__name__](a.value, b.value))


def _stub_tensorrt() -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__path__ = []  # a package, so "tensorrt.plugin" can live under it
    trt.Dims = type("Dims", (_Stub,), {"MAX_DIMS": 8})
    trt.DataType = type("DataType", (), {n: _DataType(n) for n in ("FLOAT", "HALF", "INT8", "INT32", "BF16")})
    trt.float32, trt.float16 = trt.DataType.FLOAT, trt.DataType.HALF
    trt.IDimensionExpr = _DimExpr
    trt.__getattr__ = _stub_module_attribute  # everything else: classes to subclass, enums, functions
    return trt


class TensorRTPluginAPI:
    """The loaded ``tensorrt.plugin`` plus what a test needs to drive a registered plugin like TensorRT does."""

    def __init__(self, trtp, trt):
        self.trtp, self.trt = trtp, trt

    def definition(self, plugin_id: str):
        return self.trtp._lib.QDP_REGISTRY[plugin_id]

    def desc(self, shape, dtype: str = "FLOAT", max_shape=None):
        """A TensorDesc as aot_impl sees it: constant shape expressions plus a concrete (min/opt/max) shape."""
        trtp = self.trtp
        desc = trtp.TensorDesc(trtp.ShapeExprs.from_tuple(tuple(trtp.ShapeExpr(_DimExpr(d)) for d in shape)),
                               getattr(self.trt.DataType, dtype))
        desc._shape = _ConcreteShape(shape, max_shape or shape)
        return desc

    def aot_impl(self, plugin_id: str, inputs, attributes, tactic: int = 0) -> dict:
        """Call the plugin's aot_impl as ``get_launch_params`` does; return its results evaluated to ints."""
        definition = self.definition(plugin_id)
        attrs = [attributes[name] for name in definition.aot_impl_attr_names]
        sym = self.trtp._tensor.SymIntExpr
        sym._exprBuilder = _ExprBuilder()  # get_launch_params installs TensorRT's builder the same way
        try:
            outputs = (definition.register_func(*inputs, *[attributes[n] for n in definition.input_attrs]),)
            name, ptx, launch, extra = definition.aot_impl_func(*inputs, *attrs, outputs, tactic)
            value = lambda e: e._expr.get_constant_value()  # noqa: E731
            return dict(
                kernel_name=name, ptx=ptx, launch=launch, extra_args_type=type(extra),
                grid=tuple(value(getattr(launch, f"grid_{a}")) for a in "xyz"),
                block=tuple(value(getattr(launch, f"block_{a}")) for a in "xyz"),
                shared_mem=value(launch.shared_mem),
                extra_args=tuple(value(e) for e in extra),
                extra_arg_types={type(e).__name__ for e in extra},
            )
        finally:
            sym._exprBuilder = None

    def autotune(self, plugin_id: str, inputs, attributes):
        definition = self.definition(plugin_id)
        attrs = [attributes[name] for name in definition.autotune_attr_names]
        outputs = (inputs[0],)
        return definition.autotune_func(*inputs, *attrs, outputs)


class _ConcreteShape(tuple):
    """``tensorrt.plugin.Shape`` duck: dims with -1 for dynamic ones, and ``.max`` (profile maximum)."""

    def __new__(cls, dims, max_dims):
        shape = super().__new__(cls, dims)
        shape.max = tuple(max_dims)
        return shape

    def _clone(self):
        return _ConcreteShape(self, self.max)


@pytest.fixture
def tensorrt_plugin_api(monkeypatch):
    """The real ``tensorrt.plugin`` source over a stubbed ``tensorrt``; skips when the source is absent."""
    source = os.environ.get("EDGEKIT_TRT_PLUGIN_SRC")
    init = Path(source or "/nonexistent") / "__init__.py"
    if not init.exists():
        pytest.skip("needs tensorrt.plugin's source: set EDGEKIT_TRT_PLUGIN_SRC to the bindings wheel's plugin folder")
    for name in [m for m in sys.modules if m == "tensorrt" or m.startswith("tensorrt.")]:
        monkeypatch.delitem(sys.modules, name)
    trt = _stub_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    spec = importlib.util.spec_from_file_location("tensorrt.plugin", init, submodule_search_locations=[str(init.parent)])
    plugin = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", plugin)
    trt.plugin = plugin
    spec.loader.exec_module(plugin)
    yield TensorRTPluginAPI(plugin, trt)
    for name in [m for m in sys.modules if m.startswith("tensorrt.plugin.")]:
        sys.modules.pop(name, None)
