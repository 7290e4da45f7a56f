"""Plots of a profile report as inline SVG strings (matplotlib, text kept as text), so the HTML file
stands alone: no scripts, no network, no image files beside it."""
from __future__ import annotations

import io

import numpy as np

_PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
            "#64B5CD"]


def _plt():
    try:
        import matplotlib
    except ImportError:
        from edgekit.errors import UsageError

        raise UsageError("the HTML report draws its plots with matplotlib: pip install 'edgekit[report]'") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "svg.hashsalt": "edgekit"})
    return plt


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    _plt().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG sits inside HTML


def run_label(result: dict, run: dict) -> str:
    b = result["bundle"]
    return f"{b['model']} {b['target']} {b['precision']} b{run['batch']} t{run['threads'] or 'def'}"


def latency_distribution(results: list[dict]) -> str:
    """Box plot with every sample of every run, one row each (ms, log scale when runs differ > 10x)."""
    plt = _plt()
    rows = [(run_label(r, run), run["samples_ms"]) for r in results for run in r["runs"]]
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(rows)))
    ax.boxplot([s for _, s in rows], vert=False, whis=(1, 99), showfliers=False, widths=0.6,
               medianprops={"color": "#C44E52", "linewidth": 2})
    rng = np.random.default_rng(0)
    for i, (_, samples) in enumerate(rows):
        ax.scatter(samples, i + 1 + rng.uniform(-0.18, 0.18, len(samples)), s=4, alpha=0.35, color=_PALETTE[i % 10])
    ax.set_yticks(range(1, len(rows) + 1), [label for label, _ in rows])
    ax.invert_yaxis()
    lo, hi = min(min(s) for _, s in rows), max(max(s) for _, s in rows)
    if hi / max(lo, 1e-9) > 10:
        ax.set_xscale("log")
    ax.set_xlabel("latency per inference (ms); box: p25-p75, whiskers: p1-p99, red: median")
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def comparison(results: list[dict]) -> str:
    """Median latency of every run (bar) with its p90 (whisker), and throughput beside it."""
    plt = _plt()
    rows = [(run_label(r, run), run) for r in results for run in r["runs"]]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 0.6 + 0.4 * len(rows)), sharey=True,
                                  gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(len(rows))
    med = [run["latency_ms"]["median"] for _, run in rows]
    p90 = [run["latency_ms"]["p90"] for _, run in rows]
    colors = [_PALETTE[i % 10] for i in range(len(rows))]
    ax.barh(y, med, color=colors, xerr=[np.zeros(len(rows)), np.subtract(p90, med)], capsize=3)
    for yi, m, p in zip(y, med, p90):
        ax.text(p, yi, f"  {m:.3g}", va="center", fontsize=8)  # after the whisker, not under it
    ax.set_yticks(y, [label for label, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("median latency (ms), whisker to p90")
    ax2.barh(y, [run["throughput_ips"] for _, run in rows], color=colors, alpha=0.7)
    ax2.set_xlabel("throughput (images/s)")
    for a in (ax, ax2):
        a.grid(axis="x", alpha=0.3)
    return _svg(fig)


def layer_bars(result: dict, run: dict, top: int) -> str:
    """The top-N slowest layers of a run, coloured by op type, labelled with their module."""
    plt = _plt()
    layers = run["layers"]
    by_name = {rec["name"]: rec for rec in layers["records"]}
    recs = [by_name[n] for n in layers["top"][:top] if n in by_name]
    types = list(dict.fromkeys(r["op_type"] for r in recs))
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.32 * len(recs)))
    y = np.arange(len(recs))
    ax.barh(y, [r["time_ms"] for r in recs], color=[_PALETTE[types.index(r["op_type"]) % 10] for r in recs])
    labels = [f"{_short(r['module'] or '(root)', 34)}  {_short(r['name'].split('/')[-1], 24)}" for r in recs]
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    for yi, r in zip(y, recs):
        ax.text(r["time_ms"], yi, f" {r['time_ms']:.3g} ms ({r['share'] * 100:.0f}%)", va="center", fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=_PALETTE[i % 10]) for i in range(len(types))]
    ax.set_xlim(0, max((r["time_ms"] for r in recs), default=1.0) * 1.3)  # room for the value labels
    ax.legend(handles, types, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlabel(f"ms per inference ({layers['profiler']}, median of {layers['iterations']})")
    ax.set_title(run_label(result, run), fontsize=9, loc="left")
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def group_bars(run: dict, key: str, title: str, limit: int = 12) -> str:
    """Share of layer time per op type or per block."""
    plt = _plt()
    rows = run["layers"][key][:limit]
    fig, ax = plt.subplots(figsize=(4.6, 0.6 + 0.28 * len(rows)))
    y = np.arange(len(rows))
    ax.barh(y, [r["share"] * 100 for r in rows], color=_PALETTE[0 if key == "by_op_type" else 2])
    ax.set_yticks(y, [_short(r["name"], 30) for r in rows], fontsize=8)
    ax.invert_yaxis()
    for yi, r in zip(y, rows):
        ax.text(r["share"] * 100, yi, f" {r['time_ms']:.3g} ms", va="center", fontsize=7)
    ax.set_xlabel("% of layer time")
    ax.set_title(title, fontsize=9, loc="left")
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def roofline(results: list[dict], device: dict) -> str:
    """Achieved GFLOP/s against arithmetic intensity for every run, under the device's roofs."""
    plt = _plt()
    points = [(run_label(r, run), run["roofline"]) for r in results for run in r["runs"]
              if run["roofline"].get("achieved_gflops")]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if not points:
        ax.text(0.5, 0.5, "no FLOP count in these bundles' manifests", ha="center", transform=ax.transAxes)
        return _svg(fig)
    xs = [p["intensity"] for _, p in points]
    x_lo, x_hi = min(xs) / 4, max(xs) * 4
    grid = np.geomspace(x_lo, x_hi, 100)
    for i, (prec, peak) in enumerate(sorted(device["peak_gflops"].items(), key=lambda kv: kv[1])):
        bandwidth = device.get("bandwidth_gbs")
        roof = np.minimum(peak, grid * bandwidth) if bandwidth else np.full_like(grid, peak)
        ax.plot(grid, roof, "--", color="#555", alpha=0.4 + 0.15 * i, linewidth=1)
        cores = f", all {device['cores']} cores" if device.get("per_core") and device.get("cores") else ""
        ax.text(x_lo, peak * 1.05, f" {prec} peak {peak:.0f} GFLOP/s{cores}", va="bottom", fontsize=7, color="#555")
    for i, (label, p) in enumerate(points):
        ax.scatter(p["intensity"], p["achieved_gflops"], color=_PALETTE[i % 10], s=30, zorder=3,
                   label=f"{label}: {p['achieved_gflops']:.3g} GFLOP/s"
                         + (f" ({p['fraction_of_peak'] * 100:.0f}% of peak)" if p.get("fraction_of_peak") else ""))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per minimal byte moved)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(f"{device['name']}: {device['description']}", fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)  # beside: points stay visible
    ax.grid(alpha=0.2, which="both")
    return _svg(fig)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1):]
