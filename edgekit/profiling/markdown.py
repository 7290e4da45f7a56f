"""The report as markdown tables (for a PR comment or a CI summary)."""
from __future__ import annotations


def _ms(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")


def _row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def render_markdown(data: dict) -> str:
    where = data["where"]["remote"] or "this machine"
    dev = data["device"]
    s = data["settings"]
    timed = f"{s['duration_s']} s of runs" if s["duration_s"] else f"{s['iterations']} runs"
    lines = [f"## edgekit profile ({where})", "",
             f"{s['warmup']} warm-up runs, then {timed}; roofline device **{dev['name']}** ({dev['description']}).", ""]
    if data.get("regression"):
        reg = data["regression"]
        lines += [f"### Regression check vs `{reg['baseline']}`: {'**FAILED**' if reg['failed'] else 'passed'} "
                  f"(threshold +{reg['threshold_pct']:g}%)", "",
                  _row(["run", "median ms", "baseline ms", "change", ""]), _row(["---"] * 3 + ["---:", "---"])]
        lines += [_row([c["key"], _ms(c["median_ms"]), _ms(c["baseline_median_ms"]), f"{c['change_pct']:+.1f}%",
                        "regressed" if c["regressed"] else "ok"]) for c in reg["comparisons"]]
        lines.append("")
    lines += [_row(["model", "target", "precision", "batch", "threads", "median", "p90", "p99", "min", "max", "mean",
                    "std", "img/s", "cold start", "peak RSS MiB", "GFLOP/s", "% peak"]),
              _row(["---"] * 3 + ["---:"] * 14)]
    for r in data["results"]:
        b = r["bundle"]
        for run in r["runs"]:
            lat, rf = run["latency_ms"], run["roofline"]
            lines.append(_row([b["model"], b["target"], b["precision"], run["batch"], run["threads"] or "default",
                               _ms(lat["median"]), _ms(lat["p90"]), _ms(lat["p99"]), _ms(lat["min"]), _ms(lat["max"]),
                               _ms(lat["mean"]), _ms(lat["std"]), f"{run['throughput_ips']:.1f}",
                               _ms(run["cold_start"]["total_ms"]), f"{run['memory']['peak_rss_mb']:.0f}",
                               f"{rf['achieved_gflops']:.1f}" if rf["achieved_gflops"] else "-",
                               f"{rf['fraction_of_peak'] * 100:.1f}%" if rf["fraction_of_peak"] else "-"]))
    lines += ["", "Times in ms. Cold start = load + first inference."]
    for h in data.get("head_to_head") or []:
        noise = h["noise"]
        lines += ["", f"### Head to head, b{h['batch']} t{h['threads'] or 'default'} ({h['rounds']} interleaved runs "
                      f"each, {h['clock']} clock)", "",
                  _row(["bundle", "median ms", f"vs {h['baseline']} [95% CI]", "verdict"]),
                  _row(["---", "---:", "---", "---"])]
        for row in h["rows"]:
            lines.append(_row([row["bundle"], _ms(row["median_ms"]),
                               f"{row['ratio']:.2f}x [{row['low']:.2f}, {row['high']:.2f}]" if "ratio" in row
                               else "baseline", row.get("verdict", "")]))
        lines += ["", f"A/A control (the baseline timed twice): {noise['ratio']:.2f}x [{noise['low']:.2f}, "
                      f"{noise['high']:.2f}]: ratios inside it are noise."]
    for r in data["results"]:
        for run in r["runs"]:
            layers = run.get("layers")
            if not layers:
                continue
            by_name = {rec["name"]: rec for rec in layers["records"]}
            lines += ["", f"### {r['bundle']['model']} {r['bundle']['target']} {r['bundle']['precision']} "
                          f"b{run['batch']} t{run['threads'] or 'default'}: top {len(layers['top'])} layers "
                          f"({layers['profiler']})", "",
                      _row(["layer", "op type", "ms", "share", "module"]), _row(["---", "---", "---:", "---:", "---"])]
            for name in layers["top"]:
                rec = by_name[name]
                lines.append(_row([f"`{rec['name']}`", rec["op_type"], _ms(rec["time_ms"]),
                                   f"{rec['share'] * 100:.1f}%",
                                   (rec["module"] or "(root)") + (" (inferred)" if rec["module_inferred"] else "")]))
            for key, title in (("by_op_type", "By op type"), ("by_block", "By block")):
                lines += ["", f"{title}: " + ", ".join(f"{g['name']} {g['share'] * 100:.0f}%" for g in layers[key][:6])]
    return "\n".join(lines) + "\n"
