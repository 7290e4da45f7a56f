"""edgekit's engine build and runners against a recording fake of TensorRT (tests/targets/fake_tensorrt.py).

TensorRT cannot run here, so these hold the decisions around it: plugins ahead of time where TensorRT and
Triton can (kernel target scoped around the build), ONNX function bodies elsewhere (said in the build facts),
the timing cache's verdict, and host code allowed wherever a version-compatible engine is deserialized
(build check, edgekit's runner, the device runner, the C++ backend); and the trtexec lines those engines need.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import onnx
import pytest

from edgekit.errors import EdgekitFailure
from edgekit.plugins import tensorrt_aot
from edgekit.targets.tensorrt import device as tensorrt_device
from edgekit.targets.tensorrt.device import Gpu
from edgekit.targets.tensorrt.engine import BuildError, build_engine, make_runtime, runtime_options
from edgekit.targets.tensorrt.options import TrtOptions
from edgekit.targets.tensorrt.profiles import ShapeProfile
from tests.targets.fake_tensorrt import Recorder, fake_tensorrt

ROOT = Path(__file__).resolve().parents[2]
H100 = Gpu(0, "NVIDIA H100 80GB HBM3", "9.0")


@pytest.fixture
def model_file(plugin_onnx, tmp_path) -> tuple[Path, int]:
    """(the TensorRT-flavoured ONNX with both plugin ops on disk, its number of edgekit nodes)."""
    path = tmp_path / "model.onnx"
    onnx.save_model(plugin_onnx[0], str(path))
    return path, sum(n.domain == "edgekit" for n in plugin_onnx[0].graph.node)


@pytest.fixture
def trt(monkeypatch):
    """A fake TensorRT 10.13 as ``tensorrt``; the build GPU an H100; plugin registration recorded."""
    rec = Recorder()
    module = fake_tensorrt("10.13.3.9", rec)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    monkeypatch.setattr(tensorrt_device, "probe_gpus", lambda: ((H100,), None))
    import edgekit.plugins

    monkeypatch.setattr(edgekit.plugins, "register_tensorrt", lambda: rec.events.append(("register",)))
    return module


def aot_available(monkeypatch, trt):
    monkeypatch.setattr(tensorrt_device, "aot_plugin_problem", lambda module: None)
    trt.recorder.plugin_layer_names = ["WindowAttention", "LinearAttention"]


def test_without_aot_plugins_the_nodes_are_built_from_their_function_bodies(trt, model_file, tmp_path):
    path, nodes = model_file
    assert nodes == 2
    built = build_engine(path, tmp_path / "model.engine", TrtOptions().to_dict(), plugin_nodes=nodes)
    rec = trt.recorder
    assert built["plugins"]["mode"] == "function-bodies"  # fake 10.13 without QuickPluginCreationRequest
    assert built["plugins"]["reason"].startswith("2 edgekit node(s) built from their ONNX function bodies: "
                                                 "TensorRT 10.13.3.9 has no tensorrt.plugin")
    assert ("parse", "bytes", [""]) in rec.events  # inlined: the parser saw standard ops only
    assert ("register",) not in rec.events and rec.kernel_target_at_build is None
    assert built["plugin_layers"] == [] and (tmp_path / "layers.json").is_file()


@pytest.mark.parametrize("level, sm, ptx", [("ampere+", "sm_80", "7.0"), ("none", "sm_90a", "8.0"),
                                            ("same-cc", "sm_90a", "8.0")])
def test_aot_plugins_compile_for_the_engines_kernel_target(trt, model_file, tmp_path, monkeypatch, level, sm, ptx):
    aot_available(monkeypatch, trt)
    path, nodes = model_file
    build = TrtOptions.parse({"hardware_compatibility": level}).to_dict()
    built = build_engine(path, tmp_path / "model.engine", build, plugin_nodes=nodes)
    rec = trt.recorder
    assert ("register",) in rec.events and ("parse", "file", ["", "edgekit"]) in rec.events
    assert built["plugins"]["mode"] == "aot" and len(built["plugin_layers"]) == 2
    assert (built["plugins"]["kernel_target"]["arch"], built["plugins"]["kernel_target"]["ptx_version"]) == (sm, ptx)
    assert (rec.kernel_target_at_build.sm, rec.kernel_target_at_build.ptx) == (sm, ptx)  # scoped during the build
    assert tensorrt_aot._SCOPED_TARGET == []  # and only then


def test_gpus_before_ampere_get_function_bodies_and_no_ampere_plus(trt, model_file, tmp_path, monkeypatch):
    aot_available(monkeypatch, trt)
    monkeypatch.setattr(tensorrt_device, "probe_gpus", lambda: ((Gpu(0, "Tesla T4", "7.5"),), None))
    built = build_engine(model_file[0], tmp_path / "model.engine", {}, model_file[1])
    assert built["plugins"]["mode"] == "function-bodies"
    assert built["plugins"]["reason"].endswith("edgekit's plugin kernels need compute capability >= 8.0 (Triton), "
                                               "this GPU (Tesla T4) is 7.5")
    with pytest.raises(BuildError, match=r"ampere\+ needs a build GPU of compute capability >= 8.0, this one "
                                         r"\(Tesla T4\) is 7.5: build without it"):
        build_engine(model_file[0], tmp_path / "model.engine", {"hardware_compatibility": "ampere+"}, model_file[1])


def test_an_architecture_without_a_kernel_target_gets_function_bodies(trt, model_file, tmp_path, monkeypatch):
    aot_available(monkeypatch, trt)
    monkeypatch.setattr(tensorrt_device, "probe_gpus", lambda: ((Gpu(0, "NVIDIA Thor", "10.1"),), None))
    built = build_engine(model_file[0], tmp_path / "model.engine", {}, model_file[1])
    assert built["plugins"]["mode"] == "function-bodies" and ("register",) not in trt.recorder.events
    assert "edgekit's plugin kernels have no PTX target for sm_101" in built["plugins"]["reason"]


def test_plugin_nodes_the_parser_did_not_take_fail_the_build(trt, model_file, tmp_path, monkeypatch):
    aot_available(monkeypatch, trt)
    trt.recorder.plugin_layer_names = ["WindowAttention"]
    with pytest.raises(BuildError, match="only 1 of 2 edgekit nodes were built as plugins"):
        build_engine(model_file[0], tmp_path / "model.engine", {}, model_file[1])


def test_a_refused_timing_cache_is_one_line_saying_what_to_do(trt, model_file, tmp_path):
    trt.recorder.timing_cache_accepted = False
    cache = tmp_path / "old.cache"
    cache.write_bytes(b"from another GPU")
    with pytest.raises(BuildError) as e:
        build_engine(model_file[0], tmp_path / "model.engine", {"timing_cache": str(cache)}, model_file[1])
    assert str(e.value) == (f"TensorRT refused the timing cache {cache} (made by another TensorRT version or GPU): "
                            f"delete it or pass another --timing-cache")
    assert ("set_timing_cache", False) in trt.recorder.events  # asked to refuse a mismatch, not to ignore it


def test_version_compatible_engine_is_checked_with_host_code_allowed(trt, model_file, tmp_path):
    build = TrtOptions.parse({"version_compatible": True}).to_dict()
    build_engine(model_file[0], tmp_path / "model.engine", build, model_file[1])
    (deserialized,) = [e for e in trt.recorder.events if e[0] == "deserialize"]
    assert deserialized == ("deserialize", b"VC-PLAN", True, -1)


def test_make_runtime_allows_host_code_only_for_version_compatible_engines(trt):
    assert make_runtime(trt, trt.Logger(), True).engine_host_code_allowed is True
    plain = make_runtime(trt, trt.Logger(), False)
    assert plain.engine_host_code_allowed is False and plain.DLA_core == -1
    assert make_runtime(trt, trt.Logger(), False, dla_core=1).DLA_core == 1
    # a version-compatible plan does not load without it: what the fake (and TensorRT) does
    assert plain.deserialize_cuda_engine(b"VC-PLAN") is None


def _fake_cudart(monkeypatch):
    cudart = types.ModuleType("cuda.bindings.runtime")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda = types.ModuleType("cuda")
    cuda.bindings = bindings
    for name, module in (("cuda", cuda), ("cuda.bindings", bindings), ("cuda.bindings.runtime", cudart)):
        monkeypatch.setitem(sys.modules, name, module)


def test_engine_allows_host_code_for_version_compatible_engines(trt, tmp_path, monkeypatch):
    """The one TensorRT engine (local runs and the device runner alike) loads a version-compatible plan only with
    host code allowed, and sets the DLA core; a refusal is one line with TensorRT's words."""
    from edgekit.engines import EngineError
    from edgekit.engines.tensorrt import TrtEngine

    _fake_cudart(monkeypatch)
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"VC-PLAN")
    opened = TrtEngine(engine, {"profile": 0, "version_compatible": True, "dla_core": 0}, None)
    assert opened.runtime.engine_host_code_allowed is True and opened.runtime.DLA_core == 0
    with pytest.raises(EngineError, match="TensorRT 10.13.3.9 cannot load model.engine"):
        TrtEngine(engine, {"profile": 0}, None)


def test_backend_opens_the_engine_as_the_manifest_records_it(trt, tmp_path, monkeypatch):
    from edgekit.targets.tensorrt.backend import TensorRtBackend

    _fake_cudart(monkeypatch)
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"VC-PLAN")
    options = runtime_options({"version_compatible": True, "dla_core": 1})
    assert options == {"artifact": "engine", "profile": 0, "version_compatible": True, "dla_core": 1}
    opened = TensorRtBackend().open(tmp_path, ["model.engine"], options)
    assert opened.runtime.engine_host_code_allowed is True and opened.runtime.DLA_core == 1
    with pytest.raises(EdgekitFailure, match="TensorRT 10.13.3.9 cannot load model.engine"):
        TensorRtBackend().open(tmp_path, ["model.engine"], {**options, "version_compatible": False})


def test_cpp_backend_allows_host_code_for_version_compatible_engines():
    """cpp/src/backend_tensorrt.cpp (compiled only where TensorRT is): host code allowed, and the DLA core set,
    from the manifest's facts, before the engine is deserialized."""
    source = (ROOT / "cpp" / "src" / "backend_tensorrt.cpp").read_text()
    allow = source.index('if (fact(m, "version_compatible") == "true") runtime_->setEngineHostCodeAllowed(true);')
    dla = source.index("runtime_->setDLACore(std::stoi(dla));")
    assert allow < source.index("runtime_->deserializeCudaEngine(") and dla < source.index("runtime_->deserializeCudaEngine(")


# ---------------------------------------------------------------- trtexec lines


def test_trtexec_loads_engines_with_the_flags_they_need():
    from edgekit.targets.tensorrt.command import trtexec_build_args, trtexec_profile_args

    profiles = (ShapeProfile("input", (1, 3, 64, 64), (2, 3, 64, 64), (4, 3, 64, 64)),)
    plain = trtexec_profile_args(profiles, TrtOptions())
    assert "--versionCompatible" not in plain and not any(a.startswith("--useDLACore") for a in plain)
    options = TrtOptions.parse({"version_compatible": True, "dla_core": "1"})
    load = trtexec_profile_args(profiles, options)
    assert load[:2] == ["trtexec", "--loadEngine=model.engine"]
    assert "--versionCompatible" in load and "--useDLACore=1" in load  # host code allowed; the engine's DLA core
    build = trtexec_build_args(options, profiles)
    assert {"--versionCompatible", "--useDLACore=1", "--allowGPUFallback"} <= set(build)


def test_device_check_script_without_tensorrt_says_so_in_one_line(tmp_path):
    import os
    import subprocess

    if tensorrt_device.probe().tensorrt is not None:
        pytest.skip("TensorRT is installed here: the script would run its checks")
    script = ROOT / "scripts" / "device_check_trt.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    run = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHON": sys.executable})
    assert run.returncode == 2
    assert run.stderr.startswith("device_check_trt: TensorRT is not importable here (ModuleNotFoundError")
    assert run.stderr.endswith("run this on a device with TensorRT\n") and run.stderr.count("\n") == 1
