#!/usr/bin/env python3
"""Set up edgekit in ./.venv and run the main job or the test suite. Needs only Python >= 3.10 and pip.

    python3 scripts/bootstrap.py demo   # install everything, export the default zoo model to ONNX Runtime and OpenVINO
    python3 scripts/bootstrap.py test   # install test dependencies, run the whole test suite
                                        # (two pytest-xdist workers, one per core; EDGEKIT_TEST_WORKERS=1: serial)

Idempotent: a stamp of what was installed skips pip when nothing changed. torch is installed first
(EDGEKIT_TORCH, default torch==2.13.0, the CPU build on these machines) and pinned for every later
install, so pip never swaps it for a newer, CUDA-laden one. timm is installed with --no-deps: its
metadata requires torchvision, which edgekit does not need (see edgekit/timm_compat.py).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
TORCH = os.environ.get("EDGEKIT_TORCH", "torch==2.13.0")
# everything that installs from the registries on any machine ([trt] needs NVIDIA's index: on the device only)
EXTRAS = {"demo": "timm,quant,coreml,ray,executorch,litert", "test": "timm,quant,coreml,dev"}
NO_DEPS = ["timm>=1.0"]
DEMO_MODEL = "efficientvit_b0"


def sh(*cmd: str | Path, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def pip(*args: str) -> None:
    sh(PY, "-m", "pip", "install", "--disable-pip-version-check", "-q", *args)


def install(kind: str) -> None:
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp_file = VENV / f".edgekit-{kind}.stamp"
    stamp = hashlib.sha256(((ROOT / "pyproject.toml").read_bytes() + TORCH.encode() + kind.encode())).hexdigest()
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        print(f"{VENV} is up to date for {kind!r}", flush=True)
        return
    pip(TORCH)
    torch_version = subprocess.run([str(PY), "-c", "import torch; print(torch.__version__.split('+')[0])"],
                                   check=True, capture_output=True, text=True).stdout.strip()
    constraints = VENV / "constraints.txt"
    constraints.write_text(f"torch=={torch_version}\n")
    pip("-c", str(constraints), "-e", f"{ROOT}[{EXTRAS[kind]}]")
    pip("--no-deps", *NO_DEPS)
    stamp_file.write_text(stamp)


def demo() -> int:
    install("demo")
    edgekit = BIN / "edgekit"
    bundles = ROOT / "bundles"
    for target in ("onnx", "openvino"):
        sh(edgekit, "export", DEMO_MODEL, "--target", target, "--out", bundles / f"{DEMO_MODEL}-{target}", "--force")
    sh(edgekit, "inspect", bundles / f"{DEMO_MODEL}-openvino")
    print(f"\nbundles written to {bundles}/{DEMO_MODEL}-onnx and {bundles}/{DEMO_MODEL}-openvino")
    print(f"activate the environment with: source {VENV}/bin/activate; then: edgekit --help")
    return 0


def fetch_test_data() -> None:
    """TensorRT's bindings wheels (the real tensorrt.plugin source the plugin tests run), downloaded once into
    ~/.cache/edgekit. A failure is reported, not fatal: those tests then skip, or fail where CI is set."""
    subprocess.run([str(PY), str(ROOT / "tests" / "tensorrt_bindings.py")], cwd=ROOT, check=False)


def test(pytest_args: list[str]) -> int:
    install("test")
    fetch_test_data()
    workers = os.environ.get("EDGEKIT_TEST_WORKERS") or str(min(2, os.cpu_count() or 1))
    parallel = [] if "-n" in pytest_args or workers in ("0", "1") else ["-n", workers, "--dist", "loadfile"]
    # numpy's OpenBLAS single-threaded: a worker that had run the ExecuTorch and LiteRT tests hung once in
    # OpenBLAS's thread pool (exec_blas_async_wait, in a parity cosine); the tests' BLAS work is small
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    return subprocess.run([str(PY), "-m", "pytest", "-q", *parallel, *pytest_args], cwd=ROOT, env=env).returncode


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test", "install"):
        print(__doc__)
        return 2
    if sys.argv[1] == "install":
        install("test")
        return 0
    return demo() if sys.argv[1] == "demo" else test(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
