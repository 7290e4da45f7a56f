"""Rich renderings of edgekit results for the terminal (the CLI's only presentation code)."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def parity_table(parity: dict) -> Table:
    """The gate's figures; for several outputs one row each, then the worst, which decides."""
    several = bool(parity.get("outputs"))
    t = Table(title="parity vs PyTorch fp32", show_header=True, header_style="bold")
    for col in (("output",) if several else ()) + ("images", "cosine min", "max abs", "max abs / range", "rel L2",
                                                     "agreement", "gate"):
        t.add_column(col, justify="right")
    if not parity.get("measured", True):
        t.add_row(*(["-"] if several else []), "-", "-", "-", "-", "-", "-", parity.get("reason", "not measured"))
        return t
    tol = parity.get("tolerance", {})
    status = "[green]pass[/green]" if parity.get("passed") else "[red]FAIL[/red]"
    rows = [(name, figures, "") for name, figures in (parity.get("outputs") or {}).items()]
    rows.append(("worst" if several else "", parity, f"{status} {parity.get('gate', '')}"))
    for name, f, gate in rows:
        t.add_row(*([name] if several else []), str(parity["images"]), f"{f['cosine_min']:.6f} (>= {tol.get('cosine')})",
                  f"{f['max_abs']:.3g}",
                  f"{f['max_abs_rel']:.2e}" + (f" (<= {tol['max_abs_rel']:.0e})" if tol.get("max_abs_rel") else ""),
                  f"{f['rel_l2']:.2e}",
                  f"{f['agreement'] * 100:.1f}% {parity['agreement_kind']}"
                  + (f" (>= {tol['agreement'] * 100:.0f}%)" if tol.get("agreement") else ""), gate)
    return t


def layerwise_table(data: dict) -> Table:
    """`edgekit debug`: every module's figures in graph order, the first diverging one marked, the cause below."""
    layer = data["layerwise"]
    first = (layer.get("first_divergence") or {}).get("module")
    t = Table(title=f"{data['precision']} against fp32, module by module ({layer['images']} images, "
                    f"{layer['runtime']})", show_header=True, header_style="bold")
    for col in ("module", "op", "cosine min", "max abs / range", "inf/NaN", "fp32 peak"):
        t.add_column(col, justify="left" if col in ("module", "op") else "right")
    for tap in layer["taps"]:
        style = "bold red" if tap["module"] == first else None
        t.add_row(tap["module"], tap["op_type"], f"{tap['cosine_min']:.6f}", f"{tap['max_abs_rel']:.2e}",
                  str(tap["nonfinite"]), f"{tap['fp32_peak']:.3g}", style=style)
    diagnosis = layer.get("diagnosis") or {}
    t.caption = (f"first diverging module: {first}: {diagnosis.get('cause', '')}; --keep-fp "
                 f"'{(diagnosis.get('keep_fp') or [''])[0]}' or export with --auto-fix" if first else
                 "no module breaks the tolerance layer by layer")
    return t


def _what(extra: dict) -> str:
    """' (map, stride 8)' for an output the manifest describes as a feature; '' for logits and inputs."""
    kind = extra.get("kind")
    if kind in (None, "logits") or not isinstance(kind, str):
        return ""
    return f" ({kind}, stride {extra['stride']})" if extra.get("stride") else f" ({kind})"


def manifest_summary(m: dict, explain: bool = False) -> Group:
    """A bundle's manifest (and ``edgekit inspect``'s file check, ``files_ok``) for the terminal."""
    from edgekit.manifest import as_manifest

    m = as_manifest(m)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    model = m.model
    what = (f"{len(m.outputs)} feature output(s)" if model.task == "features" else f"{model.num_classes} classes")
    head.add_row("model", f"{model.name} ({model.task}, {what}) from {model.source}")
    origin = model.origin or {}
    if origin.get("weights"):
        head.add_row("weights", origin["weights"])
    labels = model.labels
    if isinstance(labels, list) and labels:
        shown = ", ".join(labels[:5]) + (f", ... ({len(labels)})" if len(labels) > 5 else "")
        head.add_row("labels", f"{shown} [dim]({origin.get('labels', '')})[/dim]" if origin.get("labels") else shown)
    head.add_row("target", f"{m.target} {m.precision} on {m.runtime.name} {m.runtime.version}")
    if m.runtime_options:
        head.add_row("runtime options", ", ".join(f"{k}={v}" for k, v in m.runtime_options.items()))
    for io, tensors in (("inputs", m.inputs), ("outputs", m.outputs)):
        head.add_row(io, "; ".join(f"{v.name} {v.dtype} {'x'.join(map(str, v.shape))}{_what(v.extra)}" for v in tensors))
    pp = m.preprocess
    if pp:
        head.add_row("preprocess", f"resize {pp['size'][0]}x{pp['size'][1]} {pp['resize']}, {pp['channel_order']}, "
                                   f"mean {tuple(round(v, 3) for v in pp['mean'])}, std {tuple(round(v, 3) for v in pp['std'])}, {pp['layout']}")
        sources = sorted(set((pp.get("origin") or {}).values()))
        if sources:
            head.add_row("preprocess from", "; ".join(sources))
    if model.flops:
        head.add_row("compute", f"{model.flops / 1e9:.2f} GFLOP per forward")
    ex = m.get("export", {})
    if ex.get("converter"):  # a target converting the torch model itself (CoreML, ExecuTorch, LiteRT)
        head.add_row("export", f"{ex.get('frontend')} -> {ex['converter']}, {ex.get('format')}")
    else:
        head.add_row("export", f"{ex.get('exporter')} exporter, opset {ex.get('opset')}, IR {ex.get('ir_version')}, "
                               f"{ex.get('simplifier') or 'not simplified'}, {ex.get('seconds')} s")
    delegation = ex.get("delegation")
    if delegation:
        nodes = delegation["nodes"]
        portable = ", ".join(f"{op} x{n}" for op, n in list(delegation.get("portable_ops", {}).items())[:5])
        head.add_row("delegated", f"{delegation['delegate']}: {delegation['flops']['share'] * 100:.1f}% of FLOPs, "
                                  f"{nodes['delegated']} of {nodes['delegated'] + nodes['portable']} nodes in "
                                  f"{delegation['subgraphs']} subgraph(s)"
                                  + (f"; portable kernels: {portable}" if portable else ""))
    head.add_row("files", ", ".join(f"{f.path} ({_mb(f.bytes)})" for f in m.files))
    if m.plugins:
        head.add_row("plugins", ", ".join(f"{p['domain']}::{p['name']}" for p in m.plugins))
    built_as = m.runtime.extra.get("plugins")
    if isinstance(built_as, dict) and built_as.get("mode") not in (None, "none"):  # TensorRT: how the plugins built
        target = built_as.get("kernel_target") or {}
        detail = f"kernels for {target.get('arch')}, PTX {target.get('ptx_version')}" if target else built_as.get("reason")
        head.add_row("plugins built as", f"{built_as['mode']} ({detail})")
    if "files_ok" in m:
        head.add_row("files check", "[green]sha256 ok[/green]" if m["files_ok"] else f"[red]{'; '.join(m['file_problems'])}[/red]")
    parts = [head]
    rw = m.get("rewrites", {})
    if explain or any(rw.get("rules", {}).values()) or any(rw.get("swaps", {}).values()):
        parts.append(rewrites_table(rw, explain))
    if explain and ex.get("portable"):
        parts.append(portable_table(ex["portable"]))
    if m.get("quantization"):
        parts.append(quantization_table(m["quantization"]))
    parts.append(parity_table(m.get("parity", {"measured": False})))
    return Group(*parts)


def portable_table(rows: list[dict]) -> Table:
    """The nodes a program's delegate did not take (ExecuTorch), by op and module, with the reason."""
    t = Table(title="left on the portable kernels", title_justify="left")
    for col in ("op", "module", "count", "MFLOPs", "why"):
        t.add_column(col, justify="right" if col in ("count", "MFLOPs") else "left")
    for r in rows:
        t.add_row(r["op"], r["module"], str(r["count"]), f"{r['flops'] / 1e6:.1f}", r["reason"])
    return t


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


def quantization_table(q: dict):
    """What int8 kept (agreement, cosine), the recipe, the islands and why, the speed."""
    t = Table(title="quantization", show_header=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    if "kept" not in q:  # a target's own summary (e.g. CoreML weights)
        t.add_row("int8", str(q.get("summary", q)))
        for reason, entry in q.get("islands", {}).items():
            t.add_row(f"float: {reason}", f"{entry['count']} op(s): {entry['why']}")
        return t
    k, sp, b = q["kept"], q.get("speed", {}), q.get("budget", {})
    t.add_row("recipe", f"{q['recipe']} ({q['method']} activation ranges)")
    t.add_row("calibration", f"{q['calibration']['images']} images from {q['calibration']['source']}, "
                             f"sha256 {q['calibration']['sha256'][:16]}, cache {q['calibration'].get('cache')}")
    t.add_row("kept", f"agreement {k['agreement'] * 100:.2f}%, cosine min {k['cosine_min']:.4f} ({k['measured_on']})")
    if b:
        status = "[green]met[/green]" if b.get("met") else "[red]not met[/red]"
        t.add_row("budget", f"agreement >= {b['agreement_min'] * 100:.1f}%, cosine >= {b['cosine_min']}: {status}"
                            + (f"; blocks kept in float: {', '.join(b['kept_blocks'])}" if b.get("kept_blocks") else ""))
        if b.get("fallback"):
            t.add_row("fallback", f"{q['recipe']} instead of {b['fallback']['from']}, which {b['fallback']['why']}")
    for reason, entry in q.get("islands", {}).items():
        t.add_row(f"float: {reason}", f"{entry['count']} node(s): {entry['why']}")
    if sp:
        t.add_row("speed", f"fp32 {sp['fp32_ms']:.2f} ms -> int8 {sp['int8_ms']:.2f} ms ({sp['speedup']:.2f}x) "
                           f"on {sp['runtime']}")
    if len(q.get("candidates", [])) > 1:
        t.add_row("recipes tried", "; ".join(
            f"{c['name']}{' (chosen)' if c.get('chosen') else ''}: {c['agreement'] * 100:.1f}%, cos {c['cosine_min']:.4f}"
            + (f", {c['ms']:.2f} ms" if c.get("ms") else "") for c in q["candidates"]))
    return t


def sensitivity_table(report: dict) -> Table:
    """Blocks ranked by what quantizing each alone costs (most sensitive first)."""
    base = report["baseline"]
    t = Table(title=f"int8 sensitivity per block ({report['recipe']}, {report['images']} calibration images; "
                    f"all blocks int8: agreement {base['agreement'] * 100:.1f}%, cosine min {base['cosine_min']:.4f})",
              show_header=True, header_style="bold")
    for col, just in (("rank", "right"), ("block", "left"), ("layers", "right"), ("agreement", "right"),
                      ("drop (points)", "right"), ("cosine min", "right"), ("cosine mean", "right")):
        t.add_column(col, justify=just)
    for i, b in enumerate(report["blocks"], 1):
        t.add_row(str(i), b["block"], str(b["nodes"]), f"{b['agreement'] * 100:.2f}%",
                  f"{(1 - b['agreement']) * 100:.2f}", f"{b['cosine_min']:.5f}", f"{b['cosine_mean']:.5f}")
    return t


def eval_table(report: dict, bundle: str) -> Table:
    """Accuracy of a bundle on a labeled folder, with the fp32 reference's and their agreement; for a features
    bundle each output's cosine with the reference."""
    if report.get("outputs") is not None:
        t = Table(title=f"agreement with the fp32 reference on {report['images']} images", show_header=True,
                  header_style="bold")
        for col in ("output", "cosine mean", "cosine min", "rel L2 (worst image)"):
            t.add_column(col, justify="right")
        for name, o in report["outputs"].items():
            t.add_row(name, f"{o['cosine_mean']:.6f}", f"{o['cosine_min']:.6f}", f"{o['rel_l2']:.2e}")
        t.caption = f"{bundle}; reference: {report['reference']}"
        return t
    pct = report["metric"] == "top-1"

    def fmt(v):
        return "-" if v is None else (f"{v * 100:.2f}%" if pct else f"{v:.4f}")

    t = Table(title=f"evaluation on {report['images']} labeled images", show_header=True, header_style="bold")
    for col in ("bundle", report["metric"], f"fp32 reference {report['metric']}", "drop", "agreement with fp32"):
        t.add_column(col, justify="right")
    drop = None if report["reference_value"] is None else report["reference_value"] - report["value"]
    t.add_row(bundle, fmt(report["value"]), fmt(report["reference_value"]), fmt(drop),
              "-" if report["agreement"] is None else f"{report['agreement'] * 100:.2f}%")
    if report.get("reference"):
        t.caption = f"reference: {report['reference']}"
    return t
