"""TensorRT engines: build, run, parity, layer report. Needs an NVIDIA GPU and TensorRT >= 10.7 (skipped elsewhere)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import edgekit
from edgekit.targets.tensorrt_device import probe

PLUGIN_MODEL = "tests.targets.plugin_models:window_classifier"
ENV = probe()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not ENV.can_build, reason=f"needs an NVIDIA GPU and TensorRT: {ENV.gpu_problem or ''} {ENV.tensorrt_problem or ''}"
)]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_with_aot_plugins_matches_pytorch(tmp_path, precision):
    bundle = edgekit.export(PLUGIN_MODEL, "trt", tmp_path / "b", precision=precision,
                            target_options={"timing_cache": str(tmp_path / "t.cache")})
    m = bundle.manifest
    assert m["runtime"]["artifact"] == "engine" and m["runtime"]["plugin_layers"] == 2
    assert m["runtime"]["compute_capability"] == ENV.gpu.compute_capability
    assert m["parity"]["measured"] and m["parity"]["passed"], m["parity"]
    assert (tmp_path / "t.cache").stat().st_size > 0
    runner = edgekit.runtime.load(tmp_path / "b")
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    report = runner.runner.layer_report({runner.runner.input_names[0]: x}, tmp_path / "b" / "model.onnx")
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
