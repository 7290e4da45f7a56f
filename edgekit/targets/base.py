"""One interface for every target: build an artifact from ONNX, open a runner, infer, time.

A target module holds only what is unique to its SDK and imports that SDK lazily, so
``edgekit --help`` works without it. Shared work (export, rewrites, parity, bundle) lives elsewhere.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgekit.config import Precision, Target


@dataclass
class BuildResult:
    files: list[str]  # paths relative to the bundle dir; files[0] is what the runtime opens
    runtime: dict  # {"name": ..., "version": ...}
    precision: Precision
    options: dict = field(default_factory=dict)  # what the runner must set to reproduce (threads, precision hints)
    notes: list[str] = field(default_factory=list)


class Runner(ABC):
    """A loaded artifact: feeds in, outputs out."""

    input_names: list[str]
    output_names: list[str]

    @abstractmethod
    def infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...

    def time(self, feeds: dict[str, np.ndarray], warmup: int = 5, iters: int = 30) -> list[float]:
        """Latencies in ms of ``iters`` runs after ``warmup``."""
        for _ in range(warmup):
            self.infer(feeds)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            self.infer(feeds)
            times.append((time.perf_counter() - t0) * 1e3)
        return times

    def profile(self, feeds: list[dict[str, np.ndarray]], iters: int = 10, warmup: int = 2) -> dict | None:
        """Per-layer times from the runtime's own profiler over ``iters`` runs (rotating through
        ``feeds``) after ``warmup``: {"profiler", "statistic", "iterations", "memory", "records":
        [{"name", "op_type", "kernel", "time_ms" (per inference), "calls", "onnx_nodes"}]}; None when
        the runtime has no profiler. Runs on a separate profiling session, never the timed one."""
        return None

    def close(self) -> None:
        return None


class TargetBackend(ABC):
    target: Target
    precisions: tuple[Precision, ...]
    sdk: str  # the Python package that must import

    def missing(self) -> str | None:
        """Why this target cannot build here (one line with the fix), or None."""
        import importlib.util

        if importlib.util.find_spec(self.sdk) is None:
            return f"target {self.target.value} needs the {self.sdk} package: pip install {self.sdk}"
        return None

    @abstractmethod
    def build(self, model: onnx.ModelProto, out_dir: Path, precision: Precision, options: dict) -> BuildResult: ...

    @abstractmethod
    def open(self, bundle_dir: Path, files: list[str], options: dict, threads: int | None = None) -> Runner: ...

    @abstractmethod
    def runtime_version(self) -> str: ...

    def preflight(self, manifest: dict) -> list[str]:
        """Reasons the installed runtime cannot run this bundle (empty when it can)."""
        missing = self.missing()
        if missing:
            return [missing]
        built = manifest.get("runtime", {}).get("version", "")
        if built and _version_tuple(self.runtime_version()) < _version_tuple(built)[:2]:
            return [f"bundle was built with {self.sdk} {built} but {self.runtime_version()} is installed; "
                    f"upgrade {self.sdk} to >= {'.'.join(built.split('.')[:2])}"]
        return []


def unsupported_nodes(model: onnx.ModelProto, domains: set[str]) -> list[onnx.NodeProto]:
    """Nodes in a domain the runtime has no kernels for and that no model-local function defines."""
    local = {(f.domain, f.name) for f in model.functions}
    return [n for n in model.graph.node if n.domain not in domains and (n.domain, n.op_type) not in local]


def check_ops(model: onnx.ModelProto, domains: set[str], runtime: str) -> None:
    from edgekit.errors import EdgekitFailure

    bad = unsupported_nodes(model, domains)
    if bad:
        n = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise EdgekitFailure(f"{runtime} cannot run op {n.domain}::{n.op_type} (node {n.name!r}){more}; replace the "
                             f"module that emits it or choose another target")


def _version_tuple(v: str) -> tuple[int, ...]:
    parts = []
    for p in v.split("+")[0].split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)
