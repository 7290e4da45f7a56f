"""Writing a bundle directory atomically.

Everything is written into a hidden staging directory beside the destination and renamed into
place only when the export succeeded, so an interrupted or failed export leaves nothing behind
and an existing bundle is replaced only with ``force``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgekit.errors import UsageError


def check_destination(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise UsageError(f"output directory {out} exists; pass --force to replace it or choose another --out")
    if out.exists() and not out.is_dir():
        raise UsageError(f"output path {out} exists and is not a directory")


@contextmanager
def staged_bundle(out: Path, force: bool) -> Iterator[Path]:
    """Yield a staging dir; on success it becomes ``out``, on any error it is removed."""
    out = Path(out)
    check_destination(out, force)
    created = [d for d in (out.parent, *out.parent.parents) if not d.exists()]  # deepest first
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; a bundle is an ordinary directory
    try:
        yield staging
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for d in created:  # folders made for --out a/b/c: gone again, as nothing was written
            try:
                d.rmdir()
            except OSError:
                break
        raise
