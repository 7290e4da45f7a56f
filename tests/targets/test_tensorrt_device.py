"""The TensorRT probe per release: what each can build, and whether edgekit's plugins build ahead of time there.

Probed by capability, never by version number, on stand-ins of the compiled module (tests/tensorrt_stand_in.py)
with each release's plugin package: none (10.3, JetPack 6), one without ahead-of-time plugins (10.7), and the
real source of 10.13 and 11.4 (tests/tensorrt_bindings.py), which the probe imports as Python would.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from edgekit.targets.tensorrt import device as tensorrt_device
from edgekit.targets.tensorrt.device import TrtEnvironment, aot_plugin_problem, library_problem, missing_message
from tests.tensorrt_bindings import RELEASES
from tests.tensorrt_stand_in import compiled_module


@pytest.fixture
def as_tensorrt(monkeypatch):
    """Make a stand-in the ``tensorrt`` Python imports (and forget its ``tensorrt.plugin`` afterwards)."""
    for name in [m for m in sys.modules if m == "tensorrt" or m.startswith("tensorrt.")]:
        monkeypatch.delitem(sys.modules, name)

    def install(trt):
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return trt

    yield install
    for name in [m for m in sys.modules if m.startswith("tensorrt.plugin")]:
        sys.modules.pop(name, None)


def test_jetpack6_tensorrt_10_3_builds_but_has_no_plugin_package(as_tensorrt):
    trt = as_tensorrt(compiled_module("10.3.0.30", quick_plugins=False))
    assert library_problem(trt) is None
    assert aot_plugin_problem(trt) == ("TensorRT 10.3.0.30 has no tensorrt.plugin; ahead-of-time plugins need "
                                       "TensorRT >= 10.9")


def test_tensorrt_10_7_has_python_plugins_but_not_ahead_of_time(as_tensorrt, tmp_path):
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "__init__.py").write_text("")
    trt = as_tensorrt(compiled_module("10.7.0.23", aot=False, package_dir=tmp_path))
    assert library_problem(trt) is None
    assert aot_plugin_problem(trt) == ("TensorRT 10.7.0.23 has only Python plugins that run Python at inference; "
                                       "ahead-of-time plugins need TensorRT >= 10.9")


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_releases_with_aot_plugins(version, as_tensorrt, tensorrt_bindings, monkeypatch):
    """The probe imports the release's real tensorrt.plugin and finds aot_impl; without Triton it says so."""
    bindings = tensorrt_bindings[version]
    trt = as_tensorrt(compiled_module(version, package_dir=bindings.plugin_dir.parent))
    assert library_problem(trt) is None
    assert aot_plugin_problem(trt) is None
    assert Path(sys.modules["tensorrt.plugin"].__file__).resolve() == (bindings.plugin_dir / "__init__.py").resolve()
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real_find_spec(name, *a))
    assert aot_plugin_problem(trt) == ("Triton is not installed (it compiles the plugin kernels at engine build): "
                                       "pip install triton")


def test_a_plugin_package_without_aot_impl_is_named(as_tensorrt, tmp_path):
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "__init__.py").write_text("def register(plugin_id):\n    pass\n")
    trt = as_tensorrt(compiled_module("10.8.0.43", package_dir=tmp_path))
    assert aot_plugin_problem(trt) == ("TensorRT 10.8.0.43's tensorrt.plugin has no aot_impl, KernelLaunchParams, "
                                       "SymInt32; ahead-of-time plugins need TensorRT >= 10.9")


def test_libraries_that_cannot_build_are_named():
    assert library_problem(types.SimpleNamespace(__version__="10.3.0.30")) == (
        "the installed tensorrt 10.3.0.30 has no builder or ONNX parser")
    old = types.SimpleNamespace(__version__="8.5.2.2", Builder=object, OnnxParser=object,
                                NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0))
    assert library_problem(old) == "TensorRT 8.5.2.2 has no strongly typed networks; edgekit needs TensorRT >= 10.3"


def test_missing_tensorrt_message_states_the_floor():
    env = TrtEnvironment(None, "TensorRT is not installed", (tensorrt_device.Gpu(0, "Orin", "8.7"),), None, "aarch64")
    why = missing_message(env)
    assert why.startswith("target trt needs TensorRT >= 10.3 with its ONNX parser (TensorRT is not installed)")
    assert "\n" not in why and "--onnx-only" in why


def test_without_tensorrt_the_plugin_problem_is_the_library_one():
    env = tensorrt_device.probe()
    if env.tensorrt is not None:
        pytest.skip(f"TensorRT {env.tensorrt} is installed here")
    assert env.aot_plugins_problem == env.tensorrt_problem
