"""Rich renderings of edgekit results for the terminal (the CLI's only presentation code)."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def parity_table(parity: dict) -> Table:
    t = Table(title="parity vs PyTorch fp32", show_header=True, header_style="bold")
    for col in ("images", "cosine min", "max abs", "max abs / range", "rel L2", "agreement", "gate"):
        t.add_column(col, justify="right")
    if not parity.get("measured", True):
        t.add_row("-", "-", "-", "-", "-", "-", parity.get("reason", "not measured"))
        return t
    tol = parity.get("tolerance", {})
    status = "[green]pass[/green]" if parity.get("passed") else "[red]FAIL[/red]"
    t.add_row(str(parity["images"]), f"{parity['cosine_min']:.6f} (>= {tol.get('cosine')})",
              f"{parity['max_abs']:.3g}",
              f"{parity['max_abs_rel']:.2e}" + (f" (<= {tol['max_abs_rel']:.0e})" if tol.get("max_abs_rel") else ""),
              f"{parity['rel_l2']:.2e}",
              f"{parity['agreement'] * 100:.1f}% {parity['agreement_kind']}"
              + (f" (>= {tol['agreement'] * 100:.0f}%)" if tol.get("agreement") else ""),
              f"{status} {parity.get('gate', '')}")
    return t


def manifest_summary(m: dict, explain: bool = False) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    model = m.get("model", {})
    head.add_row("model", f"{model.get('name')} ({model.get('task')}, {model.get('num_classes')} classes) from {model.get('source')}")
    head.add_row("target", f"{m['target']} {m['precision']} on {m.get('runtime', {}).get('name')} {m.get('runtime', {}).get('version')}")
    if m.get("runtime_options"):
        head.add_row("runtime options", ", ".join(f"{k}={v}" for k, v in m["runtime_options"].items()))
    for io in ("inputs", "outputs"):
        head.add_row(io, "; ".join(f"{v['name']} {v['dtype']} {'x'.join(map(str, v['shape']))}" for v in m[io]))
    pp = m.get("preprocess", {})
    if pp:
        head.add_row("preprocess", f"resize {pp['size'][0]}x{pp['size'][1]} {pp['resize']}, {pp['channel_order']}, "
                                   f"mean {tuple(round(v, 3) for v in pp['mean'])}, std {tuple(round(v, 3) for v in pp['std'])}, {pp['layout']}")
    if model.get("flops"):
        head.add_row("compute", f"{model['flops'] / 1e9:.2f} GFLOP per forward")
    ex = m.get("export", {})
    head.add_row("export", f"{ex.get('exporter')} exporter, opset {ex.get('opset')}, IR {ex.get('ir_version')}, "
                           f"{ex.get('simplifier') or 'not simplified'}, {ex.get('seconds')} s")
    head.add_row("files", ", ".join(f"{f['path']} ({_mb(f['bytes'])})" for f in m["files"]))
    if m.get("plugins"):
        head.add_row("plugins", ", ".join(f"{p['domain']}::{p['name']}" for p in m["plugins"]))
    if "files_ok" in m:
        head.add_row("files check", "[green]sha256 ok[/green]" if m["files_ok"] else f"[red]{'; '.join(m['file_problems'])}[/red]")
    parts = [head]
    rw = m.get("rewrites", {})
    if explain or any(rw.get("rules", {}).values()) or any(rw.get("swaps", {}).values()):
        parts.append(rewrites_table(rw, explain))
    if m.get("quantization"):
        q = m["quantization"]
        parts.append(f"[bold]quantization[/bold]: {q.get('summary', q)}")
    parts.append(parity_table(m.get("parity", {"measured": False})))
    return Group(*parts)


def rewrites_table(rw: dict, explain: bool) -> Table:
    t = Table(title="rewrites", show_header=True, header_style="bold")
    t.add_column("kind")
    t.add_column("rule")
    t.add_column("count", justify="right")
    t.add_column("why not applied" if explain else "")
    for name, n in rw.get("swaps", {}).items():
        t.add_row("module swap", name, str(n), rw.get("not_applied", {}).get(name, "") if explain else "")
    for name, n in rw.get("rules", {}).items():
        if n or explain:
            t.add_row("onnx rule", name, str(n), rw.get("not_applied", {}).get(name, "") if explain else "")
    if not rw.get("swaps") and not rw.get("rules"):
        t.add_row("-", "none for this target", "0", "")
    return t


def models_table(rows: list[dict]) -> Table:
    t = Table(title="edgekit model zoo", show_header=True, header_style="bold")
    for col, just in (("name", "left"), ("family", "left"), ("task", "left"), ("params (M)", "right"),
                      ("GMACs", "right"), ("input", "right"), ("classes", "right")):
        t.add_column(col, justify=just)
    for r in rows:
        t.add_row(r["name"], r["family"], r["task"], f"{r.get('params_m', '-')}", f"{r.get('gmacs', '-')}",
                  "x".join(map(str, r["input_size"])), str(r["num_classes"]))
    return t
