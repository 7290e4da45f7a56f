"""Rich tables of a profile report for the terminal (what `edgekit profile` prints)."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table


def _ms(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")


def latency_table(data: dict) -> Table:
    from rich import box

    where = data["where"]["remote"] or "this machine"
    t = Table(title=f"latency on {where} (ms)", header_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1))
    t.add_column("run", overflow="fold", min_width=16)
    for col in ("median", "p90", "p99", "img/s", "cold", "RSS MiB", "GFLOP/s"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in data["results"]:
        b = r["bundle"]
        for run in r["runs"]:
            lat, rf = run["latency_ms"], run["roofline"]
            gflops = f"{rf['achieved_gflops']:.1f}" if rf["achieved_gflops"] else "-"
            if rf["fraction_of_peak"]:
                gflops += f" ({rf['fraction_of_peak'] * 100:.0f}%)"
            t.add_row(f"{b['model']} {b['target']} {b['precision']} b{run['batch']} t{run['threads'] or 'def'}",
                      f"[bold]{_ms(lat['median'])}[/bold]", _ms(lat["p90"]), _ms(lat["p99"]),
                      f"{run['throughput_ips']:.0f}",
                      _ms(run["cold_start"]["total_ms"]), f"{run['memory']['peak_rss_mb']:.0f}", gflops)
    t.caption = "cold = load + first inference; GFLOP/s (% of the device's peak); min, max, mean, std: --json"
    return t


def layers_table(result: dict, run: dict) -> Table:
    layers = run["layers"]
    by_name = {rec["name"]: rec for rec in layers["records"]}
    b = result["bundle"]
    t = Table(title=f"{b['model']} {b['target']} {b['precision']} b{run['batch']} t{run['threads'] or 'default'}: "
                    f"top {len(layers['top'])} layers ({layers['profiler']})", header_style="bold")
    for col in ("layer", "op type", "ms", "share", "module"):
        t.add_column(col, justify="right" if col in ("ms", "share") else "left", overflow="fold")
    for name in layers["top"]:
        rec = by_name[name]
        module = (rec["module"] or "(root)") + (" [dim](inferred)[/dim]" if rec["module_inferred"] else "")
        t.add_row(rec["name"], rec["op_type"], _ms(rec["time_ms"]), f"{rec['share'] * 100:.1f}%", module)
    ops = ", ".join(f"{g['name']} {g['share'] * 100:.0f}%" for g in layers["by_op_type"][:5])
    blocks = ", ".join(f"{g['name']} {g['share'] * 100:.0f}%" for g in layers["by_block"][:5])
    t.caption = f"by op type: {ops}\nby block: {blocks}"
    return t


def regression_table(reg: dict) -> Table:
    state = "[red]FAILED[/red]" if reg["failed"] else "[green]passed[/green]"
    t = Table(title=f"regression check vs {reg['baseline']}: {state} (threshold +{reg['threshold_pct']:g}%)",
              header_style="bold")
    for col in ("run", "median ms", "baseline ms", "change"):
        t.add_column(col, justify="left" if col == "run" else "right")
    for c in reg["comparisons"]:
        color = "red" if c["regressed"] else "green"
        t.add_row(c["key"], _ms(c["median_ms"]), _ms(c["baseline_median_ms"]),
                  f"[{color}]{c['change_pct']:+.1f}%[/{color}]")
    for key in reg["unmatched"]:
        t.add_row(key, "-", "not in baseline", "-")
    return t


def head_to_head_table(h: dict) -> Table:
    noise = h["noise"]
    t = Table(title=f"head to head, b{h['batch']} t{h['threads'] or 'default'}: {h['rounds']} interleaved runs each "
                    f"({h['clock']} clock)", header_style="bold")
    for col in ("bundle", "median ms", f"vs {h['baseline']} [95% CI]", "verdict"):
        t.add_column(col, justify="right" if col == "median ms" else "left", overflow="fold")
    for row in h["rows"]:
        if "ratio" not in row:
            t.add_row(row["bundle"], _ms(row["median_ms"]), "baseline", "")
            continue
        color = {"faster": "green", "slower": "red"}.get(row["verdict"], "dim")
        t.add_row(row["bundle"], _ms(row["median_ms"]), f"{row['ratio']:.2f}x [{row['low']:.2f}, {row['high']:.2f}]",
                  f"[{color}]{row['verdict']}[/{color}]")
    t.caption = (f"A/A control (the baseline timed twice): {noise['ratio']:.2f}x [{noise['low']:.2f}, "
                 f"{noise['high']:.2f}]: ratios inside it are noise")
    return t


def summary(data: dict, layer_tables: bool = True) -> Group:
    """Latency table, the first run's top layers of each bundle, and the regression verdict."""
    parts = [latency_table(data)]
    if layer_tables:
        for r in data["results"]:
            run = next((run for run in r["runs"] if run.get("layers")), None)
            if run:
                parts.append(layers_table(r, run))
    parts += [head_to_head_table(h) for h in data.get("head_to_head") or []]
    if data.get("regression"):
        parts.append(regression_table(data["regression"]))
    return Group(*parts)
