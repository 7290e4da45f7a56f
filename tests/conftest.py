"""Shared test fixtures. Tests run on CPU with random weights and the bundled photographs."""
from __future__ import annotations

import os

# numpy's OpenBLAS single-threaded, before numpy loads it (scripts/bootstrap.py sets it for its run too): a
# worker that had run the ExecuTorch and LiteRT tests once hung in OpenBLAS's thread pool in a parity cosine
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# 2-core CI machines: keep torch from oversubscribing when runtimes run threads of their own
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def cli(tmp_path):
    """Invoke the edgekit CLI in-process; returns (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from edgekit.cli import main

    def run(*args: str):
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


@pytest.fixture(scope="session")
def tensorrt_bindings():
    """TensorRT's bindings wheels of each release in tests/tensorrt_bindings.py RELEASES (version -> Bindings):
    the real ``tensorrt.plugin`` source and the compiled module's names, downloaded once and cached. Skips when
    the package registry cannot be reached, except in CI (``CI`` or ``EDGEKIT_REQUIRE_TRT_BINDINGS`` set),
    where it fails: those tests must run there."""
    import subprocess

    from tests import tensorrt_bindings as tb

    try:
        return tb.fetch_all()
    except (tb.BindingsUnavailable, OSError, subprocess.TimeoutExpired) as e:
        (pytest.fail if tb.required() else pytest.skip)(f"TensorRT bindings source unavailable: {e}")


@pytest.fixture(scope="module")
def ssh_host(tmp_path_factory):
    """An sshd on 127.0.0.1 and an ssh config file whose host alias 'device' reaches it (tests/sshd.py); the
    tests that use it carry tests.sshd.SSH_MARKS, which skip where sshd cannot run."""
    from tests.sshd import start_sshd

    yield from start_sshd(tmp_path_factory)


@pytest.fixture(scope="session")
def digits():
    """The digits cache dir with its labeled folders and the tiny classifier's checkpoint (trained if missing;
    tests/digits.py): for the tests that must judge trained weights (quantization, tune)."""
    from tests.digits import trained

    return trained("tiny_classifier")


@pytest.fixture(scope="session")
def digits_seg(digits):
    """The same dir, with the tiny segmenter's checkpoint too."""
    from tests.digits import trained

    return trained("tiny_segmenter")
