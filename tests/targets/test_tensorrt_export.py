"""`edgekit export --target trt` here, without TensorRT or a GPU: the plain error, and the --onnx-only bundle."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import edgekit
from edgekit.errors import UsageError
from edgekit.manifest import read_manifest, verify_files
from edgekit.targets.tensorrt.device import probe

TINY = "tests.fixtures.tiny:tiny_classifier"
PLUGIN_MODEL = "tests.targets.plugin_models:window_classifier"
no_trt_here = pytest.mark.skipif(probe().can_build, reason="TensorRT and a GPU are here: the engine path runs instead")


@no_trt_here
def test_without_tensorrt_or_gpu_export_fails_fast_with_one_line(cli, tmp_path):
    code, out, err = cli("export", TINY, "--target", "trt", "-o", tmp_path / "b", "-q")
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "TensorRT" in lines[0] and "NVIDIA GPU" in lines[0]
    assert "pip install 'edgekit[trt]'" in lines[0] and "--onnx-only" in lines[0]
    assert not (tmp_path / "b").exists()


def test_trt_options_on_another_target_are_refused(cli, tmp_path):
    code, _, err = cli("export", TINY, "--target", "onnx", "--onnx-only", "-o", tmp_path / "b", "-q")
    assert code == 2 and "--onnx-only applies to --target trt" in err


@pytest.fixture(scope="module")
def onnx_only_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("trt") / "bundle"
    bundle = edgekit.export(PLUGIN_MODEL, "trt", out, target_options={"onnx_only": True, "workspace": "1G"})
    return out, bundle.manifest


def test_onnx_only_bundle_holds_the_build_kit(onnx_only_bundle):
    path, m = onnx_only_bundle
    files = [f["path"] for f in m["files"]]
    assert files[0] == "model.onnx" and not (path / "model.engine").exists()
    for name in ("build/build_engine.py", "build/tensorrt_device.py", "build/trt_runtime.py", "build/config.json",
                 "trtexec.sh",
                 "tensorrt.json", "plugins/__init__.py", "plugins/window_attention/trt_plugin.py",
                 "plugins/linear_attention/triton_kernel.py", "plugins/tensorrt_aot.py"):
        assert name in files and (path / name).is_file(), name
    assert verify_files(path, m) == []
    assert m["runtime"]["artifact"] == "onnx" and m["runtime_options"] == {"artifact": "onnx"}
    # the build script imports on a device without edgekit: what it needs beside it is in build/
    blocked = "import sys; sys.modules['edgekit'] = None; import build_engine; print(build_engine.make_runtime.__module__)"
    run = subprocess.run([sys.executable, "-c", blocked], cwd=path / "build", capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "trt_runtime", run.stderr[-1000:]
    assert {p["name"] for p in m["plugins"]} == {"WindowAttention", "LinearAttention"}
    report = json.loads((path / "tensorrt.json").read_text())
    assert report["structure"]["problems"] == [] and len(report["structure"]["plugin_nodes"]) == 2
    config = json.loads((path / "build" / "config.json").read_text())
    assert config["plugin_nodes"] == 2 and config["strongly_typed"] and config["workspace"] == 2**30
    script = (path / "trtexec.sh").read_text()
    assert "trtexec --onnx=model.onnx --saveEngine=model.engine --stronglyTyped" in script
    assert "--memPoolSize=workspace:1024M" in script and "python build/build_engine.py" in script
    assert "--loadEngine=model.engine --dumpProfile" in script


def test_onnx_only_parity_is_of_the_flavoured_onnx_and_says_so(onnx_only_bundle):
    _, m = onnx_only_bundle
    parity = m["parity"]
    assert parity["measured"] and parity["passed"], parity
    assert parity["cosine_min"] >= 0.99999 and parity["max_abs_rel"] <= 1e-3  # the default fp32 tolerance (Tolerance.default)
    assert "TensorRT-flavoured ONNX in ONNX Runtime" in parity["measured_on"] and "not a TensorRT engine" in parity[
        "measured_on"]
    assert parity["artifact"]["measured"] is False and "--onnx-only" in parity["artifact"]["reason"]


def test_onnx_only_bundle_does_not_load_as_an_engine(onnx_only_bundle):
    path, _ = onnx_only_bundle
    with pytest.raises(UsageError, match=r"--onnx-only.*build/build_engine.py"):
        edgekit.runtime.load(path)


def test_build_script_uses_the_bundles_own_plugin_sources(onnx_only_bundle):
    path, m = onnx_only_bundle
    code = (
        "import json, sys; from pathlib import Path\n"
        f"bundle = Path({str(path)!r}); sys.path.insert(0, str(bundle / 'build'))\n"
        "import build_engine; build_engine._load_bundle_plugins(bundle)\n"
        "import edgekit.plugins as p\n"
        "print(json.dumps({'file': p.__file__, 'hashes': p.plugin_hashes()}))\n")
    out = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    assert out["file"].startswith(str(path / "plugins"))
    assert out["hashes"] == {p["name"]: p["sha256"] for p in m["plugins"]}  # what was checked here is what builds


@pytest.mark.skipif(probe().tensorrt is not None, reason="TensorRT is installed here")
def test_build_script_without_tensorrt_says_so(onnx_only_bundle):
    path, _ = onnx_only_bundle
    run = subprocess.run([sys.executable, str(path / "build" / "build_engine.py")], capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.startswith("error: TensorRT >= 10.3") and "trtexec.sh" in run.stderr


def test_engine_written_as_tensorrt_returns_it_and_manifest_rewritten(onnx_only_bundle, tmp_path):
    import shutil

    from edgekit.targets.tensorrt.engine import finish_bundle, write_plan

    bundle = tmp_path / "b"
    shutil.copytree(onnx_only_bundle[0], bundle)
    plan = bytes(range(256)) * 4  # stands in for IHostMemory: a buffer of the plan's bytes
    write_plan(bundle / "model.engine", memoryview(plan))
    assert (bundle / "model.engine").read_bytes() == plan  # nothing prepended, nothing appended
    (bundle / "layers.json").write_text(json.dumps({"Layers": []}))
    plugins = {"mode": "aot", "reason": "ahead-of-time plugins",
               "kernel_target": {"arch": "sm_87", "ptx_version": "7.4", "reason": "the build GPU"}}
    built = {"version": "10.13.0.35", "compute_capability": "8.7", "gpu": "Orin", "machine": "aarch64",
             "plugin_layers": ["/WindowAttention", "/LinearAttention"], "plugins": plugins}
    finish_bundle(bundle, built, {"version_compatible": True, "hardware_compatibility": "none", "dla_core": None})
    m = read_manifest(bundle)  # still a valid manifest (schema checked)
    assert m["files"][0]["path"] == "model.engine" and verify_files(bundle, m) == []
    assert m["runtime"]["artifact"] == "engine" and m["runtime"]["compute_capability"] == "8.7"
    assert m["runtime"]["plugins"] == plugins and m["runtime"]["version_compatible"] is True
    # what a runner needs to open it: host code allowed (version-compatible), no DLA core
    assert m["runtime_options"] == {"artifact": "engine", "profile": 0, "version_compatible": True, "dla_core": None}
    assert m["parity"]["engine"]["measured"] is False
    if not probe().can_build:  # here: the loader names what this machine lacks, in one message
        with pytest.raises(UsageError, match=r"cannot run here: .*TensorRT is not usable here.*no NVIDIA GPU here"):
            edgekit.runtime.load(bundle)


def test_dynamic_batch_profile_reaches_the_commands(tmp_path):
    bundle = edgekit.export(TINY, "trt", tmp_path / "b", dynamic_batch=True, target_options={
        "onnx_only": True, "shapes": "1x3x64x64:2x3x64x64:4x3x64x64", "timing_cache": str(tmp_path / "t.cache")})
    script = (tmp_path / "b" / "trtexec.sh").read_text()
    assert "--minShapes=input:1x3x64x64 --optShapes=input:2x3x64x64 --maxShapes=input:4x3x64x64" in script
    assert f"--timingCacheFile={tmp_path / 't.cache'}" in script and "--shapes=input:2x3x64x64" in script
    config = json.loads((tmp_path / "b" / "build" / "config.json").read_text())
    assert config["profiles"] == [{"name": "input", "min": [1, 3, 64, 64], "opt": [2, 3, 64, 64],
                                   "max": [4, 3, 64, 64]}]
    assert bundle.manifest["inputs"][0]["shape"][0] == "batch"


def test_fp16_onnx_only_measures_the_fp16_flavour(tmp_path):
    bundle = edgekit.export(PLUGIN_MODEL, "trt", tmp_path / "b", precision="fp16", target_options={"onnx_only": True})
    parity = bundle.manifest["parity"]
    assert parity["passed"] and parity["cosine_min"] >= 0.999  # the default fp16 tolerance
    import onnx

    model = onnx.load(str(tmp_path / "b" / "model.onnx"))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    assert np.dtype(bundle.manifest["inputs"][0]["dtype"]) == np.float32
