"""The bundle manifest: what the artifact is and how well it matches PyTorch.

The schema is versioned. A reader refuses a manifest whose major schema version is newer than it
knows, with a message saying to upgrade, rather than misreading it. The JSON Schema in
``edgekit/manifest.schema.json`` is shared with the C++ runtime.
"""
from __future__ import annotations

import functools
import hashlib
import json
import platform
from pathlib import Path

from edgekit.config import ExportConfig
from edgekit.errors import UsageError

SCHEMA_VERSION = "1.1"  # 1.1: model.origin, preprocess.origin, model.source_options, labels as a list
MANIFEST_FILE = "manifest.json"


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


def recorded_export_config(manifest: dict) -> ExportConfig | None:
    """The configuration a bundle was exported with, read back from ``export_config`` and the fields recorded
    elsewhere; None for a bundle written before ``export_config`` was recorded, or one without a model source."""
    record = manifest.get("export_config")
    model = manifest.get("model", {})
    if record is None or not model.get("source"):
        return None
    return ExportConfig.from_dict({**record, "source": model["source"], "target": manifest["target"],
                                   "precision": manifest["precision"],
                                   "checkpoint": (model.get("checkpoint") or {}).get("path"),
                                   "source_options": model.get("source_options")})


def write_manifest(bundle_dir: Path, manifest: dict) -> Path:
    manifest = {"schema_version": SCHEMA_VERSION, **manifest}
    path = bundle_dir / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path


def read_manifest(bundle_dir: Path) -> dict:
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
    return manifest


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


def verify_files(bundle_dir: Path, manifest: dict) -> list[str]:
    """Problems with the bundle's files (missing, changed); empty when all match."""
    problems = []
    for entry in manifest["files"]:
        p = Path(bundle_dir) / entry["path"]
        if not p.is_file():
            problems.append(f"{entry['path']} is missing")
        elif sha256_file(p) != entry["sha256"]:
            problems.append(f"{entry['path']} was modified (sha256 differs from the manifest)")
    return problems
