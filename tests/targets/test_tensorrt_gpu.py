"""TensorRT engines: build, run, parity, layer report. Needs an NVIDIA GPU and TensorRT (skipped elsewhere); the
plugin tests need ahead-of-time plugins (TensorRT >= 10.9 and Triton) and skip with the probe's reason without."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import edgekit
from edgekit.targets.tensorrt.device import probe

PLUGIN_MODEL = "tests.targets.plugin_models:window_classifier"
ENV = probe()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not ENV.can_build, reason=f"needs an NVIDIA GPU and TensorRT: {ENV.gpu_problem or ''} {ENV.tensorrt_problem or ''}"
)]


needs_aot = pytest.mark.skipif(ENV.aot_plugins_problem is not None, reason=f"{ENV.aot_plugins_problem}")


@needs_aot
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_with_aot_plugins_matches_pytorch(tmp_path, precision):
    bundle = edgekit.export(PLUGIN_MODEL, "trt", tmp_path / "b", precision=precision,
                            target_options={"timing_cache": str(tmp_path / "t.cache")})
    m = bundle.manifest
    assert m["runtime"]["artifact"] == "engine" and m["runtime"]["plugin_layers"] == 2
    assert m["runtime"]["plugins"]["mode"] == "aot"
    assert m["runtime"]["compute_capability"] == ENV.gpu.compute_capability
    assert m["parity"]["measured"] and m["parity"]["passed"], m["parity"]
    assert (tmp_path / "t.cache").stat().st_size > 0
    runner = edgekit.runtime.load(tmp_path / "b")
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    from edgekit.targets.tensorrt.layers import layer_report

    report = layer_report(runner.runner, {runner.runner.input_names[0]: x}, tmp_path / "b" / "model.onnx")
    assert {a["ran_as"] for a in report["attention"]} == {"plugin"}
    assert sum(r["time_ms"] or 0.0 for r in report["layers"]) > 0
    runner.close()


def test_onnx_only_kit_builds_on_the_device(tmp_path):
    edgekit.export(PLUGIN_MODEL, "trt", tmp_path / "b", target_options={"onnx_only": True})
    run = subprocess.run([sys.executable, str(tmp_path / "b" / "build" / "build_engine.py")], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    runner = edgekit.runtime.load(tmp_path / "b")
    out = runner.infer(np.zeros((1, 3, 32, 32), np.float32))
    assert out.shape == (1, 10) and np.isfinite(out).all()
    runner.close()


@needs_aot
def test_version_and_hardware_compatible_engine_loads_and_matches(tmp_path):
    """Host code allowed when loading (the engine embeds the lean runtime); plugin kernels as sm_80 PTX 7.0."""
    bundle = edgekit.export(PLUGIN_MODEL, "trt", tmp_path / "b",
                            target_options={"version_compatible": True, "hardware_compatibility": "ampere+"})
    m = bundle.manifest
    target = m["runtime"]["plugins"]["kernel_target"]
    assert (target["arch"], target["ptx_version"]) == ("sm_80", "7.0") and m["runtime_options"]["version_compatible"]
    assert m["parity"]["measured"] and m["parity"]["passed"], m["parity"]
    runner = edgekit.runtime.load(tmp_path / "b")
    out = runner.infer(np.zeros((1, 3, 32, 32), np.float32))
    assert out.shape == (1, 10) and np.isfinite(out).all()
    runner.close()


def test_function_bodies_build_where_aot_plugins_are_missing(tmp_path, monkeypatch):
    """What JetPack 6's TensorRT 10.3 gets: the attention nodes inlined, no plugin layer, the manifest says why."""
    from edgekit.targets.tensorrt import device as tensorrt_device

    monkeypatch.setattr(tensorrt_device, "aot_plugin_problem", lambda trt: "simulated: no ahead-of-time plugins")
    bundle = edgekit.export(PLUGIN_MODEL, "trt", tmp_path / "b")
    m = bundle.manifest
    assert m["runtime"]["plugins"]["mode"] == "function-bodies" and m["runtime"]["plugin_layers"] == 0
    assert m["runtime"]["plugins"]["reason"].endswith("simulated: no ahead-of-time plugins")
    assert m["parity"]["measured"] and m["parity"]["passed"], m["parity"]
