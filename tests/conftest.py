"""Shared test fixtures. Tests run on CPU with random weights and the bundled photographs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# 2-core CI machines: keep torch from oversubscribing when runtimes run threads of their own
torch.set_num_threads(min(2, os.cpu_count() or 1))


TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist with ``--dist loadgroup`` (what ``scripts/bootstrap.py test`` runs): every test of a
    folder (``tests/quant/``, ``tests/compat/`` ...), or of a file directly in ``tests/``, runs in the same worker,
    so the session fixtures a folder shares (trained digits models, built bundles, the compatibility results) are
    built once. Without xdist the marks do nothing."""
    for item in items:
        parts = Path(str(item.fspath)).resolve().relative_to(TESTS).parts
        item.add_marker(pytest.mark.xdist_group(parts[0] if len(parts) > 1 else Path(parts[0]).stem))


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
