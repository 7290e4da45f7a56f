"""The profile report as JSON: a versioned schema (edgekit/profiling/profile.schema.json), written
atomically, and read back (for --baseline) with a plain refusal of what this edgekit cannot read.

Schema versions: a minor bump adds fields (old readers ignore them); a major bump renames or
removes fields, and readers refuse a newer major version instead of misreading it.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path

from edgekit.errors import UsageError

SCHEMA = "edgekit.profile"
SCHEMA_VERSION = "1.1"  # 1.1: head_to_head
SCHEMA_FILE = Path(__file__).with_name("profile.schema.json")


def run_key(model: str, target: str, precision: str, batch: int, threads: int | None) -> str:
    """What a run is matched on against a baseline: the same model, target, precision and sweep point
    (not the bundle's path, which differs between CI checkouts)."""
    return f"{model}/{target}/{precision}/b{batch}/t{threads if threads else 'default'}"


def build_report(config, environment: dict | None, device, results: list[dict]) -> dict:
    from edgekit.version import __version__

    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "edgekit_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "where": {"remote": str(config.remote) if config.remote else None, "environment": environment},
        "device": device.to_dict(),
        "settings": {**config.settings(), "top": config.top, "block_depth": config.block_depth,
                     "calib": str(config.calib) if config.calib else None},
        "results": results,
        "regression": None,
    }


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file renamed into place: a reader never sees a
    half-written report, and an interrupted write leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def to_json(data: dict) -> str:
    return json.dumps(data, indent=2) + "\n"


def load_report(path: str | Path) -> dict:
    """A profile report written by `edgekit profile --out`; refuses other files and newer schemas."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} does not exist; write a baseline with `edgekit profile BUNDLE --out {path}`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UsageError(f"{path} is not an edgekit profile report (no \"schema\": \"{SCHEMA}\")")
    major = str(data.get("schema_version", "")).split(".")[0]
    if not major.isdigit() or int(major) > int(SCHEMA_VERSION.split(".")[0]):
        raise UsageError(f"{path} has profile schema {data.get('schema_version')!r}, newer than this edgekit reads "
                         f"({SCHEMA_VERSION}); upgrade edgekit")
    return data


def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def save(report, out: str | Path | None = None, html: str | Path | None = None,
         markdown: str | Path | None = None) -> list[Path]:
    """Write ``report`` (a :class:`~edgekit.profiling.profiler.ProfileReport`) as JSON, HTML and/or markdown
    (each atomically); returns the paths written."""
    written = []
    if out:
        written.append(atomic_write_text(out, to_json(report.data)))
    if markdown:
        from edgekit.profiling.markdown import render_markdown

        written.append(atomic_write_text(markdown, render_markdown(report.data)))
    if html:
        from edgekit.profiling.html import render_html

        written.append(atomic_write_text(html, render_html(report.data)))
    return written
