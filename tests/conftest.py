"""Shared test fixtures. Tests run on CPU with random weights and the bundled photographs."""
from __future__ import annotations

import os

import pytest
import torch

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
