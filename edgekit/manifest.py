"""The bundle manifest: what the artifact is and how well it matches PyTorch; read and written only here.

A :class:`Manifest` is the JSON object as read (a dict, what the Python API always gave) with typed views of
its parts, dataclasses mirroring ``edgekit/manifest.schema.json`` (the JSON Schema shared with the C++
runtime): code reads ``manifest.model.task`` and ``manifest.inputs[0].shape``, not string keys. A part keeps
the fields it does not name in ``extra``; the JSON is never rewritten on the way, so bundles written by
earlier versions load unchanged and a manifest written back is the one that was read.

The schema is versioned. A reader refuses a manifest whose major schema version is newer than it
knows, with a message saying to upgrade, rather than misreading it.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.config import ExportConfig
from edgekit.errors import UsageError

SCHEMA_VERSION = "1.2"  # 1.1: model.origin, preprocess.origin, model.source_options, labels as a list; 1.2: the
# features task (model.num_classes 0) and outputs with kind, stride and channels
MANIFEST_FILE = "manifest.json"


class _Record:
    """A part of the manifest's JSON with typed fields: ``from_dict`` takes the named fields and keeps the rest in
    ``extra`` (and the order the keys came in); ``to_dict`` gives back the same JSON."""

    @classmethod
    def from_dict(cls, d: dict):
        names = [f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "keys_")]
        return cls(**{n: d[n] for n in names if n in d}, extra={k: v for k, v in d.items() if k not in names},
                   keys_=tuple(d))

    def to_dict(self) -> dict:
        fields = [f for f in dataclasses.fields(self) if f.name not in ("extra", "keys_")]
        # the keys it was read with, then any named field set since (a value other than its default); a record
        # made in code (no keys read) has every field that is not None
        added = [f.name for f in fields if f.name not in self.keys_ and getattr(self, f.name) is not None
                 and (not self.keys_ or getattr(self, f.name) != _default(f))]
        named = {f.name for f in fields}
        out: dict[str, Any] = {}
        for key in (*self.keys_, *added):
            out[key] = getattr(self, key) if key in named else self.extra[key]
        return out


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


@dataclass
class Tensor(_Record):
    name: str = ""
    shape: list = field(default_factory=list)  # ints; a string is a dynamic dimension
    dtype: str = "float32"
    layout: str | None = None
    extra: dict = field(default_factory=dict)
    keys_: tuple = ()


@dataclass
class FileEntry(_Record):
    path: str = ""
    sha256: str = ""
    bytes: int | None = None
    extra: dict = field(default_factory=dict)
    keys_: tuple = ()


@dataclass
class ModelInfo(_Record):
    task: str = "classification"
    name: str | None = None
    source: str | None = None  # how it was loaded (a zoo name, timm:..., hf:..., a file); None if not recorded
    input_shape: list | None = None
    num_classes: int | None = None
    labels: str | list | None = None
    origin: dict | None = None  # where num_classes, labels, weights and the input size came from
    checkpoint: dict | None = None  # {"path", "sha256"}
    source_options: dict | None = None
    flops: int | None = None
    extra: dict = field(default_factory=dict)
    keys_: tuple = ()


@dataclass
class RuntimeInfo(_Record):
    name: str = ""
    version: str = ""
    artifact: str | None = None  # TensorRT: "engine", or "onnx" for --onnx-only
    extra: dict = field(default_factory=dict)  # the target's build facts (TensorRT: compute capability, plugins ...)
    keys_: tuple = ()


class Manifest(dict):
    """manifest.json as read: the JSON object itself (a dict, as the Python API always gave it: ``bundle.manifest
    ["parity"]``, ``json.dumps``) with typed views of its parts for code to read (``manifest.model.task``,
    ``manifest.inputs[0].shape``). The views are built from the JSON each time they are read, so the JSON stays
    the one truth and a manifest is written back exactly as it was read."""

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        return cls(data)

    def to_dict(self) -> dict:
        return dict(self)

    @property
    def schema_version(self) -> str:
        return str(self.get("schema_version", ""))

    @property
    def edgekit_version(self) -> str:
        return str(self.get("edgekit_version", ""))

    @property
    def target(self) -> str:
        return self["target"]

    @property
    def precision(self) -> str:
        return self["precision"]

    @property
    def model(self) -> ModelInfo:
        return ModelInfo.from_dict(self.get("model") or {})

    @property
    def runtime(self) -> RuntimeInfo:
        return RuntimeInfo.from_dict(self.get("runtime") or {})

    @property
    def runtime_options(self) -> dict:
        """What a runner sets to reproduce the parity run (the engine's options)."""
        return dict(self.get("runtime_options") or {})

    @property
    def export_config(self) -> dict | None:
        """The export's configuration but for what is recorded elsewhere; None in bundles written before it was."""
        return self.get("export_config")

    @property
    def inputs(self) -> list[Tensor]:
        return [Tensor.from_dict(t) for t in self["inputs"]]

    @property
    def outputs(self) -> list[Tensor]:
        return [Tensor.from_dict(t) for t in self["outputs"]]

    @property
    def preprocess(self) -> dict:
        """What :meth:`edgekit.preprocess.Preprocess.from_dict` reads."""
        return self["preprocess"]

    @property
    def files(self) -> list[FileEntry]:
        return [FileEntry.from_dict(f) for f in self["files"]]

    @property
    def file_paths(self) -> list[str]:
        """Paths of the bundle's files, relative to it; the first is what the runtime opens."""
        return [f["path"] for f in self["files"]]

    @property
    def batch(self) -> int | str:
        """The first input's batch dimension (a string where it is dynamic)."""
        return self["inputs"][0]["shape"][0]

    @property
    def quantization(self) -> dict | None:
        return self.get("quantization")

    @property
    def parity(self) -> dict | None:
        return self.get("parity")

    @property
    def plugins(self) -> list[dict]:
        return list(self.get("plugins") or [])


def as_manifest(manifest: Manifest | dict) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else Manifest(manifest)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entries(bundle_dir: Path, names: list[str]) -> list[dict]:
    return [{"path": n, "sha256": sha256_file(bundle_dir / n), "bytes": (bundle_dir / n).stat().st_size} for n in names]


def host_info() -> dict:
    import os

    return {"machine": platform.machine(), "system": platform.system(), "processor": platform.processor() or "",
            "cpu_count": os.cpu_count(), "python": platform.python_version()}


# ExportConfig fields the manifest records in places of their own (target, precision, model.source,
# model.checkpoint, model.source_options); ``export_config`` holds all the others
_RECORDED_ELSEWHERE = ("source", "target", "precision", "checkpoint", "source_options")


def export_config_record(config: ExportConfig) -> dict:
    """The manifest's ``export_config``: each field of ``config`` the manifest does not record elsewhere."""
    return {k: v for k, v in config.to_dict().items() if k not in _RECORDED_ELSEWHERE}


def recorded_export_config(manifest: Manifest) -> ExportConfig | None:
    """The configuration a bundle was exported with, read back from ``export_config`` and the fields recorded
    elsewhere; None for a bundle written before ``export_config`` was recorded, or one without a model source."""
    manifest = as_manifest(manifest)
    model = manifest.model
    if manifest.export_config is None or not model.source:
        return None
    return ExportConfig.from_dict({**manifest.export_config, "source": model.source, "target": manifest.target,
                                   "precision": manifest.precision,
                                   "checkpoint": (model.checkpoint or {}).get("path"),
                                   "source_options": model.source_options})


def write_manifest(bundle_dir: Path, manifest: Manifest | dict) -> Path:
    """Write ``manifest.json`` (this schema version first) into ``bundle_dir``."""
    data = manifest.to_dict() if isinstance(manifest, Manifest) else manifest
    data = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in data.items() if k != "schema_version"}}
    path = bundle_dir / MANIFEST_FILE
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def read_manifest(bundle_dir: Path) -> Manifest:
    path = Path(bundle_dir) / MANIFEST_FILE
    if not Path(bundle_dir).is_dir():
        raise UsageError(f"{bundle_dir} is not a bundle directory")
    if not path.is_file():
        raise UsageError(f"{bundle_dir} has no {MANIFEST_FILE}; is it an edgekit bundle?")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); the bundle is damaged") from None
    version = str(manifest.get("schema_version", "")) if isinstance(manifest, dict) else ""
    major = version.split(".")[0]
    if not major.isdigit():
        raise UsageError(f"{path} has no valid schema_version; the bundle is damaged or not an edgekit bundle")
    if int(major) > int(SCHEMA_VERSION.split(".")[0]):
        raise UsageError(f"bundle manifest schema {version} is newer than this edgekit reads ({SCHEMA_VERSION}); "
                         f"upgrade edgekit")
    for key in ("target", "precision", "files", "inputs", "outputs"):
        if key not in manifest:
            raise UsageError(f"{path} lacks the required field {key!r}; the bundle is damaged")
    problem = schema_problem(manifest)
    if problem:
        raise UsageError(f"{path} does not match the manifest schema {SCHEMA_VERSION} {problem}; the bundle is "
                         f"damaged or was edited")
    return Manifest.from_dict(manifest)


SCHEMA_FILE = Path(__file__).with_name("manifest.schema.json")


@functools.lru_cache(maxsize=1)
def _schema_validator():
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))


def schema_problem(manifest: dict) -> str | None:
    """How ``manifest`` breaks manifest.schema.json ("at preprocess.mean: [0.5] is too short"), or None.

    The C++ runtime (cpp/src/manifest.cpp) checks the same constraints; tests/test_manifest_schema.py
    holds both to the schema file.
    """
    import jsonschema

    error = jsonschema.exceptions.best_match(_schema_validator().iter_errors(manifest))
    if error is None:
        return None
    where = error.json_path.removeprefix("$").lstrip(".") or "top level"
    return f"at {where}: {error.message}"


def verify_files(bundle_dir: Path, manifest: Manifest) -> list[str]:
    """Problems with the bundle's files (missing, changed); empty when all match."""
    problems = []
    for entry in as_manifest(manifest).files:
        p = Path(bundle_dir) / entry.path
        if not p.is_file():
            problems.append(f"{entry.path} is missing")
        elif sha256_file(p) != entry.sha256:
            problems.append(f"{entry.path} was modified (sha256 differs from the manifest)")
    return problems
