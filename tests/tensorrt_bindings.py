"""TensorRT's own ``tensorrt.plugin`` source, from the bindings wheels on PyPI, for tests that run it here.

TensorRT's library cannot be installed on machines without NVIDIA's package index, but the bindings wheels
(``tensorrt-cu12-bindings``, ``tensorrt-cu13-bindings``; ~1.3 MB each) hold ``tensorrt_bindings/plugin/``:
the plain-Python package that turns ``@tensorrt.plugin.register`` / ``aot_impl`` into the plugin objects
TensorRT's builder calls. The tests run that real source over a stand-in for the compiled core
(``tests/tensorrt_stand_in.py``). The compiled module ``tensorrt.so`` is never imported; the names it
defines are read from its string table, to hold the stand-in and edgekit's own TensorRT calls to them.

``fetch(version)`` downloads one wheel with ``pip download --no-deps`` (a fixed platform and Python tag, so
every machine gets the same file), extracts ``plugin/*.py`` and the name list, and caches them under
``$EDGEKIT_TRT_BINDINGS_CACHE`` (default ``~/.cache/edgekit/tensorrt-bindings``): the network is used once.
``python tests/tensorrt_bindings.py`` fetches every release listed (``scripts/bootstrap.py test`` runs it).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

# One release per major edgekit builds AOT plugins with: 10.x (>= 10.9, CUDA 12 wheels) and 11.x (CUDA 13).
RELEASES = {"10.13.3.9": "tensorrt-cu12-bindings", "11.4.0.106": "tensorrt-cu13-bindings"}
# The bindings wheels are per Python version and platform; the plugin package is the same Python in each.
WHEEL_TAGS = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp")
_COMPLETE = "COMPLETE"  # written last: a cache folder without it is a broken download
_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]{2,}")


class BindingsUnavailable(RuntimeError):
    """The wheel could not be downloaded (registry unreachable, release withdrawn); the message says why."""


@dataclass(frozen=True)
class Bindings:
    version: str
    plugin_dir: Path  # the tensorrt.plugin package: __init__.py, _lib.py, _plugin_class.py, ...
    names: frozenset[str]  # identifiers in the compiled module's string table (classes, members, enums)

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def defines(self, name: str) -> bool:
        """Whether the compiled module's string table holds ``name``: as a string of its own, or as the tail of a
        longer one (linkers store a string that ends another only once, inside it: "DIMS" in "MAX_DIMS")."""
        return name in self.names or any(token.endswith(name) for token in self.names)

    def undefined(self, names) -> list[str]:
        return sorted(n for n in set(names) if not self.defines(n))


def cache_dir() -> Path:
    if os.environ.get("EDGEKIT_TRT_BINDINGS_CACHE"):
        return Path(os.environ["EDGEKIT_TRT_BINDINGS_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgekit" / "tensorrt-bindings"


def _load(folder: Path, version: str) -> Bindings:
    names = frozenset((folder / "names.txt").read_text().split())
    return Bindings(version, folder / "plugin", names)


def _download(package: str, version: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *WHEEL_TAGS,
           "--disable-pip-version-check", "--quiet", "--timeout", "20", "--retries", "1",
           "--dest", str(dest), f"{package}=={version}"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    wheels = sorted(dest.glob("*.whl"))
    if run.returncode or not wheels:
        lines = [ln.strip() for ln in (run.stderr or run.stdout).splitlines() if ln.strip()]
        raise BindingsUnavailable(f"pip download {package}=={version} failed: {lines[-1] if lines else 'no wheel'}")
    return wheels[0]


def _extract(wheel: Path, into: Path) -> None:
    """plugin/*.py of the wheel's bindings package and the identifiers of its compiled module."""
    with zipfile.ZipFile(wheel) as z:
        members = z.namelist()
        plugin = [m for m in members if re.fullmatch(r"[^/]+/plugin/[^/]+\.py", m)]
        compiled = [m for m in members if re.fullmatch(r"[^/]+/tensorrt[^/]*\.so", m)]
        if not any(m.endswith("/plugin/__init__.py") for m in plugin) or len(compiled) != 1:
            raise BindingsUnavailable(f"{wheel.name} has no tensorrt.plugin package or no single compiled module")
        (into / "plugin").mkdir(parents=True)
        for member in plugin:
            (into / "plugin" / Path(member).name).write_bytes(z.read(member))
        names = sorted({n.decode() for n in _NAME.findall(z.read(compiled[0]))})
    (into / "names.txt").write_text("\n".join(names) + "\n")


def fetch(version: str) -> Bindings:
    """The cached bindings of ``version`` (a key of RELEASES), downloading and extracting them once."""
    folder = cache_dir() / version
    if (folder / _COMPLETE).exists():
        return _load(folder, version)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{version}-") as tmp:
        staging = Path(tmp) / "bindings"
        _extract(_download(RELEASES[version], version, Path(tmp)), staging)
        (staging / _COMPLETE).write_text(RELEASES[version] + "\n")
        if folder.exists():  # a broken earlier download
            shutil.rmtree(folder)
        try:
            os.replace(staging, folder)
        except OSError:  # another process finished first
            if not (folder / _COMPLETE).exists():
                raise
    return _load(folder, version)


def fetch_all() -> dict[str, Bindings]:
    return {version: fetch(version) for version in RELEASES}


def required() -> bool:
    """Whether a missing wheel fails the tests instead of skipping them: in CI, or when asked to."""
    return bool(os.environ.get("CI") or os.environ.get("EDGEKIT_REQUIRE_TRT_BINDINGS"))


def main() -> int:
    try:
        found = fetch_all()
    except (BindingsUnavailable, OSError, subprocess.TimeoutExpired) as e:
        print(f"warning: TensorRT bindings source not fetched ({e}); the tests that run it will "
              f"{'fail' if required() else 'skip'}", file=sys.stderr)
        return 1
    for b in found.values():
        print(f"TensorRT {b.version} plugin source: {b.plugin_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
