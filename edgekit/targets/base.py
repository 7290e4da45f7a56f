"""One interface for every target: build an artifact from ONNX (or the torch model) and open it on its engine.

A target module holds only what is unique to its SDK and imports that SDK lazily, so
``edgekit --help`` works without it. Shared work (export, rewrites, parity, bundle) lives elsewhere.
This module imports neither numpy nor ONNX: the CLI loads it through the target registry.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.config import Precision, Target
from edgekit.engines import Engine

if TYPE_CHECKING:
    import onnx

    from edgekit.manifest import Manifest
    from edgekit.quant.plan import Int8Plan


@dataclass
class BuildResult:
    files: list[str]  # paths relative to the bundle dir; files[0] is what the runtime opens
    runtime: dict  # {"name": ..., "version": ...}
    precision: Precision
    options: dict = field(default_factory=dict)  # what the runner must set to reproduce (threads, precision hints)
    notes: list[str] = field(default_factory=list)
    # a build from the torch model (``needs_torch``) describes its own I/O and conversion, as there is no ONNX
    inputs: list[dict] | None = None
    outputs: list[dict] | None = None
    export: dict | None = None
    quantization: dict | None = None  # a build that quantizes itself (PT2E, in build_torch): manifest["quantization"]


def open_engine(runtime: str, model, options: dict | None = None, threads: int | None = None) -> Engine:
    """:func:`edgekit.engines.open_engine`, its one-line refusal raised as an :class:`EdgekitFailure`."""
    from edgekit.engines import EngineError
    from edgekit.engines import open_engine as open_

    try:
        return open_(runtime, model, options, threads)
    except EngineError as e:
        from edgekit.errors import EdgekitFailure

        raise EdgekitFailure(str(e)) from None


class TargetBackend(ABC):
    """What the export pipeline and the runtime ask of every target; each capability has a default here.

    A target declares ``target``, ``precisions``, ``sdk`` and ``Options`` (its parsed target options, see
    :mod:`edgekit.targets.options`), builds from ONNX (``build``) or, with ``needs_torch``, from the prepared
    torch model (``build_torch``), and opens what it built (``open``).
    """

    target: Target
    precisions: tuple[Precision, ...]
    sdk: str  # the Python package that must import
    Options: type
    needs_torch: bool = False  # converts the prepared torch model itself (CoreML): the pipeline exports no ONNX
    pt2e: bool = False  # with needs_torch: int8 through PT2E in build_torch, which then gets a Pt2eJob
    envelopes: bool = False  # takes a shape envelope (--shapes / --dynamic-hw): an artifact for a range of sizes
    envelope = None  # set by the pipeline: this export's shape envelope (edgekit.shapes.Envelope), if any
    int8: Int8Plan | None = None  # how edgekit.quant makes its int8 QDQ ONNX (islands, recipes, where they are scored)

    def __init__(self, options=None):
        self.options = options if options is not None else self.Options()

    def missing(self) -> str | None:
        """Why this target cannot build here (one line with the fix), or None."""
        import importlib.util

        if importlib.util.find_spec(self.sdk) is None:
            return f"target {self.target.value} needs the {self.sdk} package: pip install {self.sdk}"
        return None

    def check_model(self, spec, dynamic_batch: bool) -> None:
        """Fail fast, before the slow steps, when the target's options do not fit the model (``spec``:
        :class:`edgekit.sources.ModelSpec`); most targets have nothing to check."""
        return None

    def build(self, model: onnx.ModelProto, spec, out_dir: Path, precision: Precision,
              keep_fp: tuple[str, ...] = ()) -> BuildResult:
        """The artifact for ``precision`` from the exported (rewritten, quantized) ONNX, written into ``out_dir``.
        ``keep_fp``: node-name patterns an fp16 / bf16 build keeps in fp32 beyond the default islands, where the
        target's conversion takes them (int8 graphs arrive quantized, their islands applied)."""
        raise NotImplementedError(f"target {self.target.value} builds from the torch model (build_torch)")

    def build_torch(self, model, spec, out_dir: Path, precision: Precision, int8=None) -> BuildResult:
        """With ``needs_torch``: the artifact from the prepared (deploy-mode, swapped) torch model. ``int8``: for
        a target that quantizes through PT2E (``pt2e``), the :class:`edgekit.quant.pt2e.Pt2eJob` of an int8
        export (calibration set, islands, budget); None otherwise."""
        raise NotImplementedError(f"target {self.target.value} builds from ONNX (build)")

    def cannot_run_here(self, built: BuildResult) -> str | None:
        """Why ``built`` cannot run on this machine (parity is then measured on the stand-in, or not at all)."""
        return None

    def open_stand_in(self, bundle_dir: Path, built: BuildResult,
                      threads: int | None = None) -> tuple[Engine, str] | None:
        """When ``built`` cannot run here: (a runner of something that can, what it is) for the parity run; None
        when there is nothing to stand in."""
        return None

    @abstractmethod
    def open(self, bundle_dir: Path, files: list[str], options: dict, threads: int | None = None) -> Engine:
        """The built files opened on the target's engine (:mod:`edgekit.engines`)."""

    @abstractmethod
    def runtime_version(self) -> str: ...

    def preflight(self, manifest: Manifest) -> list[str]:
        """Reasons the installed runtime cannot run this bundle (empty when it can)."""
        from edgekit.manifest import as_manifest

        manifest = as_manifest(manifest)
        missing = self.missing()
        if missing:
            return [missing]
        built = manifest.runtime.version
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
