"""The HTML report: one self-contained file (inline SVG plots, inline CSS, no scripts), from the
report dict through report.html.j2."""
from __future__ import annotations

from pathlib import Path

from edgekit.profiling import plots

TEMPLATE = Path(__file__).with_name("report.html.j2")


def _ms(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def render_html(data: dict) -> str:
    """The report as an HTML page. Layer sections cover every run that has a per-layer profile."""
    try:
        import jinja2
    except ImportError:
        from edgekit.errors import UsageError

        raise UsageError("the HTML report is rendered with jinja2: pip install 'edgekit[report]'") from None
    results = data["results"]
    sections = []
    for r in results:
        for run in r["runs"]:
            layers = run.get("layers")
            if not layers:
                continue
            by_name = {rec["name"]: rec for rec in layers["records"]}
            sections.append({"label": plots.run_label(r, run), "layers": layers,
                             "rows": [by_name[n] for n in layers["top"] if n in by_name],
                             "top": plots.layer_bars(r, run, data["settings"]["top"]),
                             "ops": plots.group_bars(run, "by_op_type", "by op type"),
                             "blocks": plots.group_bars(run, "by_block",
                                                        f"by block (module depth {data['settings']['block_depth']})")})
    figures = {"comparison": plots.comparison(results), "latency": plots.latency_distribution(results),
               "roofline": plots.roofline(results, data["device"])}
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(TEMPLATE.read_text())
    title = ", ".join(dict.fromkeys(f"{r['bundle']['model']} {r['bundle']['target']} {r['bundle']['precision']}"
                                    for r in results))
    return template.render(data=data, env=(data.get("where") or {}).get("environment"), plots=figures,
                           layer_sections=sections, title=title, ms=_ms)
