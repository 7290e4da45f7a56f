"""Every Python package in the source tree is listed in pyproject.toml (setuptools packages)."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = {v: k for k, v in cfg["package-dir"].items()}  # folder -> package name
    found = set()
    for top, pkg in mapping.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([pkg, *rel.parts]) if rel.parts else pkg)
    assert found <= listed, f"add to pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"


def test_console_script_runs_without_optional_sdks():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "edgekit.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "export" in out.stdout
