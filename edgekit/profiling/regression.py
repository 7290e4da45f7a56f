"""The CI regression check: a run's median against the same run in a baseline report."""
from __future__ import annotations

from edgekit.errors import EdgekitFailure, UsageError


class RegressionError(EdgekitFailure):
    """A median regressed beyond the threshold (exit code 1); carries the report."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


def compare(data: dict, baseline: dict, threshold_pct: float, baseline_path: str = "") -> dict:
    """Each run of ``data`` against the baseline run with the same key (model/target/precision/batch/
    threads). change_pct = (median / baseline median - 1) x 100; regressed when above the threshold.
    Runs the baseline lacks are listed, not judged; none matching at all is a usage error."""
    base = {run["key"]: run for result in baseline.get("results", []) for run in result.get("runs", [])}
    rows, unmatched = [], []
    for result in data["results"]:
        for run in result["runs"]:
            old = base.get(run["key"])
            if old is None:
                unmatched.append(run["key"])
                continue
            now, was = run["latency_ms"]["median"], old["latency_ms"]["median"]
            change = (now / was - 1.0) * 100.0
            rows.append({"key": run["key"], "median_ms": now, "baseline_median_ms": was, "change_pct": change,
                         "regressed": change > threshold_pct})
    if not rows:
        keys = ", ".join(sorted(base)[:4]) or "none"
        raise UsageError(f"baseline {baseline_path} has no run matching this profile (it has: {keys}); profile the "
                         f"same model, target, precision, batch and threads")
    return {"baseline": baseline_path, "threshold_pct": threshold_pct, "failed": any(r["regressed"] for r in rows),
            "comparisons": rows, "unmatched": unmatched}


def verdict(regression: dict) -> str:
    """One line per regressed run, with the figures."""
    bad = [r for r in regression["comparisons"] if r["regressed"]]
    return "; ".join(f"{r['key']}: median {r['median_ms']:.3f} ms vs baseline {r['baseline_median_ms']:.3f} ms "
                     f"({r['change_pct']:+.1f}% > {regression['threshold_pct']:g}%)" for r in bad)
