"""Manifest preflight: an engine's build facts against a device, each mismatch said plainly.

The version rules are TensorRT's (support matrix, "Engine Portability"): a plain plan loads only in the release
that built it; a version-compatible one in that release or a later one of its major, and across 8 -> 10 and
10 -> 11 only. The C++ runtime (cpp/src/runtime.cpp) states the same rules; a test reads them there.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgekit.targets.tensorrt.compat import CROSS_MAJOR, engine_mismatches, same_release, version_compatible_runs
from edgekit.targets.tensorrt.device import Gpu, TrtEnvironment

ORIN = Gpu(0, "Orin", "8.7")
ENGINE = {"name": "tensorrt", "version": "10.3.0.30", "artifact": "engine", "compute_capability": "8.7",
          "gpu": "Orin", "machine": "aarch64", "version_compatible": False, "hardware_compatibility": "none",
          "dla_core": None}


def env(version="10.3.0.30", gpu=ORIN, machine="aarch64"):
    return TrtEnvironment(version, None if version else "TensorRT is not installed", (gpu,) if gpu else (),
                          None if gpu else "no NVIDIA driver (libcuda.so.1 not found)", machine)


def test_same_device_and_version_runs():
    assert engine_mismatches(ENGINE, env()) == []


def test_other_version_is_the_version_tag_error_said_plainly():
    (why,) = engine_mismatches(ENGINE, env(version="10.7.0.23"))
    assert "built with TensorRT 10.3.0.30 and TensorRT 10.7.0.23 is installed" in why
    assert "version tag does not match" in why and "--version-compatible" in why
    # major, minor, patch and build must match; a version without a build number (the C++ library's) matches any
    assert engine_mismatches(ENGINE, env(version="10.3.0.31"))
    assert engine_mismatches(ENGINE, env(version="10.3.0")) == []


def test_version_compatible_engines_run_on_later_versions_of_the_same_major():
    vc = {**ENGINE, "version_compatible": True}
    assert engine_mismatches(vc, env(version="10.7.0.23")) == []
    (older,) = engine_mismatches(vc, env(version="10.1.0.27"))
    assert "runs on TensorRT 10.3.0.30 or a later 10.x, or TensorRT 11.x" in older


# (built with, installed, plain plan loads, version-compatible plan loads): the releases edgekit targets
RULES = [
    ("10.3.0.30", "10.3.0.30", True, True),      # JetPack 6, same release
    ("10.3.0.30", "10.13.3.9", False, True),     # later 10.x
    ("10.13.3.9", "10.3.0.30", False, False),    # older 10.x
    ("10.13.3.9", "11.4.0.106", False, True),    # TensorRT 10 version-compatible engines run on TensorRT 11
    ("11.4.0.106", "10.13.3.9", False, False),   # never backwards across a major
    ("11.0.0.1", "11.4.0.106", False, True),
    ("8.6.1.6", "10.3.0.30", False, True),       # 8 -> 10, as documented
    ("8.6.1.6", "11.4.0.106", False, False),     # 8 -> 11: not supported
]


@pytest.mark.parametrize("built, here, plain, vc", RULES)
def test_version_rules_per_release(built, here, plain, vc):
    assert same_release(built, here) is plain
    assert version_compatible_runs(built, here) is vc
    assert (engine_mismatches({**ENGINE, "version": built, "version_compatible": True}, env(version=here)) == []) is vc
    assert (engine_mismatches({**ENGINE, "version": built}, env(version=here)) == []) is plain


def test_cpp_runtime_states_the_same_version_rules():
    """cpp/src/runtime.cpp (no TensorRT to compile it against here): the cross-major pairs are CROSS_MAJOR, and
    a plain plan's versions compare on the components both name."""
    source = (Path(__file__).resolve().parents[2] / "cpp" / "src" / "runtime.cpp").read_text()
    body = source[source.index("bool crosses_major("):]
    body = body[:body.index("}")]
    pairs = {(int(b), int(h)) for b, h in re.findall(r"built == (\d+) && here == (\d+)", body)}
    assert pairs == set(CROSS_MAJOR) == {(8, 10), (10, 11)}
    assert "common_prefix(built, installed)" in source and "b != h" in source


def test_compute_capability_and_hardware_compatibility():
    rtx = Gpu(0, "NVIDIA GeForce RTX 4090", "8.9")
    (why,) = engine_mismatches(ENGINE, env(gpu=rtx))
    assert "built for compute capability 8.7 (Orin)" in why and "RTX 4090) is compute capability 8.9" in why
    assert "--hardware-compatibility ampere+" in why
    assert engine_mismatches({**ENGINE, "hardware_compatibility": "ampere+"}, env(gpu=rtx)) == []
    turing = Gpu(0, "Tesla T4", "7.5")
    (why,) = engine_mismatches({**ENGINE, "hardware_compatibility": "ampere+"}, env(gpu=turing))
    assert "Ampere and later" in why and "7.5" in why
    assert engine_mismatches({**ENGINE, "hardware_compatibility": "same-cc"}, env(gpu=Gpu(0, "Other", "8.7"))) == []


def test_platform_dla_and_missing_pieces():
    (why,) = engine_mismatches(ENGINE, env(machine="x86_64"))
    assert "built on aarch64 and this machine is x86_64" in why
    (why,) = engine_mismatches({**ENGINE, "dla_core": 1}, env(), dla_cores=1)
    assert "DLA core 1" in why and "1 DLA core" in why
    problems = engine_mismatches(ENGINE, env(version=None, gpu=None))
    assert any("pip install 'edgekit[trt]'" in p for p in problems)
    assert any("no NVIDIA GPU here (no NVIDIA driver" in p for p in problems)


def test_onnx_only_bundle_says_how_to_build_the_engine():
    (why,) = engine_mismatches({"name": "tensorrt", "version": "none", "artifact": "onnx"}, env())
    assert "--onnx-only" in why and "build/build_engine.py" in why and "trtexec.sh" in why
