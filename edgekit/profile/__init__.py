"""`edgekit profile`: latency done right, per-layer breakdowns from each runtime's own profiler,
roofline figures, remote devices over SSH, JSON / markdown / HTML reports and a regression check.

    report = edgekit.profile(["bundles/a", "bundles/b"], threads="1,2", html="report.html")
    report.data["results"][0]["runs"][0]["latency_ms"]["median"]
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

from edgekit.profile.config import ProfileConfig, Remote
from edgekit.profile.profiler import ProfileReport, profile_bundles
from edgekit.profile.report import SCHEMA_VERSION, atomic_write_text, load_report, to_json


def save(report: ProfileReport, out: str | Path | None = None, html: str | Path | None = None,
         markdown: str | Path | None = None) -> list[Path]:
    """Write the report as JSON, HTML and/or markdown (each atomically); returns the paths written."""
    written = []
    if out:
        written.append(atomic_write_text(out, to_json(report.data)))
    if markdown:
        from edgekit.profile.markdown import render_markdown

        written.append(atomic_write_text(markdown, render_markdown(report.data)))
    if html:
        from edgekit.profile.html import render_html

        written.append(atomic_write_text(html, render_html(report.data)))
    return written


class _CallablePackage(types.ModuleType):
    """``edgekit.profile`` is both this package and the API call ``edgekit.profile(bundles, ...)``.
    Importing any submodule binds the package onto ``edgekit`` over a function of the same name, so
    the package itself is callable and forwards to :func:`edgekit.api.profile`."""

    def __call__(self, *args, **kwargs):
        from edgekit.api import profile

        return profile(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["ProfileConfig", "ProfileReport", "Remote", "SCHEMA_VERSION", "load_report", "profile_bundles", "save"]
