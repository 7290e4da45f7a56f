"""Build the C++ runtime, its examples (edgekit-run, feature-head) and the preprocessing probe once per
source version: the OpenVINO backend, and the ExecuTorch backend where the executorch wheel is installed.

The build lives outside the source tree in ``$EDGEKIT_CACHE/cpp-build/<key>`` (default
``~/.cache/edgekit``), keyed by the sources, the OpenVINO wheel and the toolchain, so a second test
run reuses it. Where CMake, a C++ compiler, nlohmann-json or stb_image is missing the tests skip with
the reason, unless ``EDGEKIT_REQUIRE_CPP=1`` (set by .ci/run), where they fail instead: CI must build.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "cpp", ROOT / "tests" / "cpp", ROOT / "edgekit" / "manifest.schema.json"]


@dataclass(frozen=True)
class CppTools:
    edgekit_run: Path
    preprocess_probe: Path
    build_dir: Path
    feature_head: Path


def _missing() -> str | None:
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    for header, package in (("nlohmann/json.hpp", "nlohmann-json3-dev"), ("stb/stb_image.h", "libstb-dev"),
                            ("openssl/evp.h", "libssl-dev")):
        if not any((Path(d) / header).is_file() for d in ("/usr/include", "/usr/local/include")):
            return f"{header} not found (apt-get install {package})"
    return None


def executorch_cmake() -> Path | None:
    """The executorch wheel's CMake package (its prebuilt C++ runtime), when the wheel is installed."""
    import importlib.util

    spec = importlib.util.find_spec("executorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "share" / "cmake"
    return path if (path / "executorch-config.cmake").is_file() else None


def _key(openvino_cmake: Path, et_cmake: Path | None) -> str:
    h = hashlib.sha256()
    for src in SOURCES:
        files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix in (".cpp", ".hpp", ".txt", ".json")) \
            if src.is_dir() else [src]
        for p in files:
            h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes())
    h.update(str(openvino_cmake).encode() + b"\0" + str(et_cmake).encode())
    for tool in ("cmake", "c++"):
        h.update(subprocess.run([tool, "--version"], capture_output=True, text=True, check=False).stdout.encode())
    return h.hexdigest()[:16]


def build() -> CppTools:
    """Configure and build (Release, -O2) or reuse a cached build; skips or fails when it cannot."""
    required = os.environ.get("EDGEKIT_REQUIRE_CPP") == "1"
    missing = _missing()
    if missing:
        (pytest.fail if required else pytest.skip)(f"C++ runtime not built: {missing}")
    import openvino

    openvino_cmake = Path(openvino.__file__).parent / "cmake"
    cache = Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "cpp-build"
    et_cmake = executorch_cmake()
    build_dir = cache / _key(openvino_cmake, et_cmake)
    examples = build_dir / "edgekit" / "examples"
    tools = CppTools(examples / "edgekit_run" / "edgekit-run", build_dir / "edgekit-preprocess-probe", build_dir,
                     examples / "feature_head" / "feature-head")
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:  # one builder at a time per key
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (build_dir / ".built").is_file():
            return tools
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        steps = [
            ["cmake", "-S", str(ROOT / "tests" / "cpp"), "-B", str(build_dir), *generator, "-DCMAKE_BUILD_TYPE=Release",
             "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG", f"-DOpenVINO_DIR={openvino_cmake}",
             # with the executorch wheel installed the ExecuTorch backend must build (ON fails loudly)
             *([f"-Dexecutorch_DIR={et_cmake}", "-DEDGEKIT_WITH_EXECUTORCH=ON"] if et_cmake else
               ["-DEDGEKIT_WITH_EXECUTORCH=OFF"])],
            ["cmake", "--build", str(build_dir), "-j", "2", "--target", "edgekit-run", "feature-head",
             "edgekit-preprocess-probe"],
        ]
        for cmd in steps:
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pytest.fail(f"{' '.join(cmd[:3])} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        (build_dir / ".built").write_text("ok\n")
    return tools
