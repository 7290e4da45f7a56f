"""Fixtures for the plugin tests: where Triton kernels run, ONNX Runtime / OpenVINO runners, TensorRT's API.

Triton kernels run compiled on an NVIDIA GPU when torch sees one, else in Triton's interpreter on the CPU
(``TRITON_INTERPRET=1``, set here, before any test module imports a kernel).

``tensorrt_plugin``: TensorRT cannot be installed on these machines, but its ``tensorrt.plugin`` package is
plain Python in the bindings wheels. The fixture loads the real source of each release in
``tests/tensorrt_bindings.py`` (downloaded once by the session fixture ``tensorrt_bindings``) over a
stand-in for TensorRT's compiled core (``tests/tensorrt_stand_in.py``), so tests register edgekit's plugins
with it and build their layers the way TensorRT's parser and builder call them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tensorrt_bindings import RELEASES

ON_GPU = torch.cuda.is_available()
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9's default, stated to silence its warning


@pytest.fixture(scope="session")
def device() -> str:
    """Device the Triton kernels run on: "cuda" (compiled) or "cpu" (interpreter)."""
    return "cuda" if ON_GPU else "cpu"


# Kernels the AOT tests compile to PTX for sm_80 at PTX 7.0 (what an H100 build with --hardware-compatibility
# ampere+ compiles): (op folder, dtype, seq_len, head_dim, scale or eps).
AOT_SPECS = (
    ("window_attention", "fp16", 144, 32, 0.17),
    ("window_attention", "fp32", 144, 32, 0.17),
    ("linear_attention", "fp16", 256, 16, 1e-6),
    ("linear_attention", "fp32", 256, 16, 1e-6),
)
_AOT_SCRIPT = """
import dataclasses, importlib, json, sys
from edgekit.plugins.tensorrt_aot import kernel_target
target = kernel_target("ampere+", "9.0")
results = []
for folder, dtype, seq_len, head_dim, attribute in json.loads(sys.argv[1]):
    module = importlib.import_module(f"edgekit.plugins.{folder}.trt_plugin")
    config, kernel = module.compile_kernel(dtype, seq_len, head_dim, attribute, target)
    results.append([dataclasses.asdict(config), dataclasses.asdict(kernel)])
with open(sys.argv[2], "w") as f:
    json.dump(results, f)
"""


@pytest.fixture(scope="session")
def aot_kernels() -> dict:
    """AOT_SPECS -> (launch config, CompiledKernel), compiled by Triton for sm_80 / PTX 7.0 on this (GPU-less)
    machine.

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
        # OpenVINO defaults to bf16 on a CPU with AVX512-BF16: ask for f32 explicitly.
        compiled = core.compile_model(
            core.read_model(model.SerializeToString(), b""), "CPU",
            {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2},
        )
        return compiled(feeds)[compiled.output(0)]

    return run


# --- TensorRT's real tensorrt.plugin over a stand-in compiled core, per release

@dataclass
class TensorRTPlugin:
    version: str
    trt: object  # the stand-in compiled module (tests/tensorrt_stand_in.py)
    trtp: object  # tensorrt.plugin: the release's real source

    def definition(self, plugin_id: str):
        return self.trtp._lib.QDP_REGISTRY[plugin_id]


@pytest.fixture(params=sorted(RELEASES), ids=lambda v: f"trt{v}")
def tensorrt_plugin(request, tensorrt_bindings, monkeypatch) -> TensorRTPlugin:
    """``tensorrt`` (stand-in) and ``tensorrt.plugin`` (real source of the release) in sys.modules for one
    test, with a fresh plugin registry; removed afterwards."""
    from tests import tensorrt_stand_in

    bindings = tensorrt_bindings[request.param]
    for name in [m for m in sys.modules if m == "tensorrt" or m.startswith("tensorrt.")]:
        monkeypatch.delitem(sys.modules, name)
    trt = tensorrt_stand_in.compiled_module(bindings.version)
    trtp = tensorrt_stand_in.load_plugin_package(trt, bindings.plugin_dir,
                                                 lambda name, module: monkeypatch.setitem(sys.modules, name, module))
    yield TensorRTPlugin(bindings.version, trt, trtp)
    for name in [m for m in sys.modules if m.startswith("tensorrt.plugin.")]:  # imported by the package itself
        sys.modules.pop(name, None)
