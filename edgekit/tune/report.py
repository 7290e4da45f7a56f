"""The rows of a tune or a sweep as tables (markdown, CSV), the Pareto front of accuracy against latency, and
its plot (matplotlib, as `edgekit profile --html` draws)."""
from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

COLUMNS = ("model", "device", "target", "precision", "status", "latency_ms", "metric", "value", "drop",
           "in_budget", "pareto", "reason")


def pareto(rows: list[dict]) -> list[dict]:
    """The timed rows no other timed row beats on both latency (lower) and accuracy (higher), fastest first."""
    timed = sorted((r for r in rows if r.get("latency_ms") is not None), key=lambda r: (r["latency_ms"], -r["value"]))
    front, best = [], float("-inf")
    for row in timed:
        if row["value"] > best + 1e-12:
            front.append(row)
            best = row["value"]
    return front


def markdown(rows: list[dict], columns=COLUMNS) -> str:
    cols = [c for c in columns if any(c in r for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[dict], columns=COLUMNS) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: r.get(c) for c in columns})


def plot_png(rows: list[dict], title: str) -> bytes | None:
    """Accuracy against latency, every timed row a point, the Pareto front a line; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    timed = [r for r in rows if r.get("latency_ms") is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in timed:
        ax.scatter(r["latency_ms"], r["value"], color="tab:blue" if r.get("in_budget") else "tab:gray", zorder=3)
        ax.annotate(_name(r), (r["latency_ms"], r["value"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    models = list(dict.fromkeys(r.get("model", "") for r in timed))
    for i, model in enumerate(models):  # each model's own front
        front = pareto([r for r in timed if r.get("model", "") == model])
        if front:
            ax.plot([r["latency_ms"] for r in front], [r["value"] for r in front], color=f"C{(i + 1) % 10}",
                    zorder=2, label=f"Pareto front{': ' + model if len(models) > 1 else ''}")
    if timed:
        ax.legend(loc="lower right", fontsize=8)
    metric = next((r["metric"] for r in timed if r.get("metric")), "accuracy")
    ax.set_xlabel("latency, median (ms)")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def html(rows: list[dict], title: str, summary: str) -> str:
    png = plot_png(rows, title)
    image = (f'<img alt="accuracy against latency" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
             if png else "<p>(matplotlib is not installed: no plot)</p>")
    header = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{_escape(_cell(r.get(c)))}</td>" for c in COLUMNS) + "</tr>" for r in rows)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}</style></head><body>"
            f"<h1>{_escape(title)}</h1><p>{_escape(summary)}</p>{image}<table><tr>{header}</tr>{body}</table>"
            "</body></html>\n")


def _name(r: dict) -> str:
    return " ".join(str(r[k]) for k in ("model", "target", "precision") if r.get(k))


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "/")


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
