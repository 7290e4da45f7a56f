"""The locator's report as a page: the gate's verdict, the diagnosis, a plot of the error module by module in
graph order (matplotlib, as ``edgekit profile`` draws its plots) and every tap's figures."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path


def error_plot(taps: list[dict], first: str | None, cosine_tolerance: float) -> bytes:
    """PNG: 1 - cosine (worst image) of every tap in graph order, log scale, the tolerance as a line and the
    first diverging module marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    error = [max(1.0 - t["cosine_min"], 1e-9) if t["nonfinite"] == 0 else 1.0 for t in taps]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(taps)), 3.6), dpi=110)
    ax.plot(range(len(taps)), error, marker="o", lw=1.2, color="#3465a4")
    ax.axhline(max(1.0 - cosine_tolerance, 1e-9), color="#cc0000", ls="--", lw=1, label="tolerance")
    for i, t in enumerate(taps):
        if t["module"] == first:
            ax.plot([i], [error[i]], marker="o", ms=10, mfc="none", mec="#cc0000", mew=2, label="first divergence")
    ax.set_yscale("log")
    ax.set_ylabel("1 - cosine (worst image)")
    ax.set_xticks(range(len(taps)))
    ax.set_xticklabels([t["module"] for t in taps], rotation=60, ha="right", fontsize=7)
    ax.set_title("error against the fp32 graph, module by module (graph order)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_html(path: Path, data: dict) -> None:
    """``data``: what ``<out>.parity-report.json`` holds (the gate, ``layerwise``, ``auto_fix``)."""
    layer = data["layerwise"]
    first = (layer.get("first_divergence") or {}).get("module")
    tolerance = data["gate"].get("tolerance", {}).get("cosine", 0.99)
    png = base64.b64encode(error_plot(layer["taps"], first, tolerance)).decode() if layer["taps"] else ""
    rows = "\n".join(
        f"<tr{' class=first' if t['module'] == first else ''}><td>{i}</td><td>{html.escape(t['module'])}</td>"
        f"<td>{html.escape(t['op_type'])}</td><td>{t['cosine_min']:.6f}</td><td>{t['max_abs_rel']:.2e}</td>"
        f"<td>{t['nonfinite']}</td><td>{t['at_fp16_limit']}</td><td>{t['fp32_peak']:.3g}</td></tr>"
        for i, t in enumerate(layer["taps"]))
    diagnosis = layer.get("diagnosis") or {}
    cause = html.escape(diagnosis.get("cause", "no module breaks the tolerance layer by layer"))
    keep = ", ".join(html.escape(p) for p in diagnosis.get("keep_fp", []))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>edgekit parity report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:72em}}td,th{{padding:2px 8px;text-align:right}}
td:nth-child(2),td:nth-child(3){{text-align:left}}tr.first{{background:#fdd}}table{{border-collapse:collapse}}
tr:nth-child(even){{background:#f4f4f4}}</style></head><body>
<h1>Parity report: {html.escape(data['source'])} &rarr; {html.escape(data['target'])} {html.escape(data['precision'])}</h1>
<p>Gate: {'passed' if data['gate'].get('passed') else 'failed'}: {html.escape('; '.join(data['gate'].get('failures', [])))}</p>
<p><b>First diverging module:</b> {html.escape(first or 'none')}. {cause}
{f'<br>Keep it in float with <code>--keep-fp {keep}</code>, or pass <code>--auto-fix</code>.' if keep else ''}</p>
{f'<img alt="error by module" src="data:image/png;base64,{png}">' if png else ''}
<p>{layer['images']} images on {html.escape(layer['runtime'])}, located in {layer['seconds']} s.</p>
<table><tr><th>#</th><th>module</th><th>op</th><th>cosine min</th><th>max abs / range</th><th>inf/NaN</th>
<th>beyond 65504 (fp32)</th><th>fp32 peak</th></tr>
{rows}
</table></body></html>
"""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page)
    tmp.replace(path)
