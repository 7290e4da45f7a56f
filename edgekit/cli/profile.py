"""`edgekit profile`: latency, per-layer breakdown and roofline of bundles, here or over SSH."""
from __future__ import annotations

import json
from pathlib import Path

import click

from edgekit.cli._core import console, main, reporter, run


@main.command()
@click.argument("bundles", nargs=-1, type=click.Path(path_type=Path))
@click.option("--remote", default=None, metavar="USER@HOST[:PORT]",
              help="Profile on this device over SSH (needs python3, numpy and the bundle's runtime there).")
@click.option("--ssh-config", type=click.Path(path_type=Path), default=None, help="ssh config file (ssh -F).")
@click.option("--remote-python", default="python3", show_default=True, help="Python interpreter on the device.")
@click.option("--device", default=None,
              help="Device descriptor for the roofline [default: the CPU it runs on]; see --list-devices.")
@click.option("--list-devices", is_flag=True, help="List the device descriptors and exit.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs before timing.")
@click.option("--iterations", "-n", type=int, default=100, show_default=True, help="Timed runs.")
@click.option("--duration", default=None, help="Time for this long instead (e.g. 10s, 2m; at least 10 runs).")
@click.option("--batch", "-b", default="1", show_default=True,
              help="Batch sizes to sweep, e.g. 1,2,4 (other than the exported one needs --dynamic-batch bundles).")
@click.option("--threads", "-t", default=None, help="Thread counts to sweep, e.g. 1,2 [default: the runtime's].")
@click.option("--layer-iters", type=int, default=10, show_default=True,
              help="Profiled runs for the per-layer breakdown (a separate session).")
@click.option("--no-layers", is_flag=True, help="Skip the per-layer breakdown.")
@click.option("--top", type=int, default=10, show_default=True, help="Slowest layers to list.")
@click.option("--block-depth", type=int, default=2, show_default=True,
              help="Module-path segments that name a block (stages.1/blocks.0 at 2).")
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Images for the pinned inputs [default: the bundled photographs].")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="A previous --out report to compare with.")
@click.option("--fail-over", default=None, metavar="PCT",
              help="Exit 1 when a median regresses more than this, e.g. 10%.")
@click.option("--input-shape", default=None, metavar="HxW",
              help="Time this input size instead of the export size (inside the bundle's shape envelope).")
@click.option("--shapes-sweep", is_flag=True, help="Time the shape envelope's MIN, OPT and MAX in one report.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None, help="Write the JSON report here.")
@click.option("--html", type=click.Path(path_type=Path), default=None, help="Write the HTML report here.")
@click.option("--markdown", type=click.Path(path_type=Path), default=None, help="Write markdown tables here.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or tables.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report on stdout.")
@run
def profile(bundles, remote, ssh_config, remote_python, device, list_devices, warmup, iterations, duration, batch,
            threads, layer_iters, no_layers, top, block_depth, calib, baseline, fail_over, input_shape, shapes_sweep, out,
            html, markdown, quiet, as_json):
    """Measure BUNDLES: latency statistics, cold start, memory, per-layer breakdown, roofline.

    \b
      edgekit profile bundles/m                          # this machine, the bundle's runtime
      edgekit profile bundles/m --remote user@jetson     # on the device, over SSH
      edgekit profile bundles/a bundles/b --html report.html
      edgekit profile bundles/m --baseline last.json --fail-over 10%   # CI regression check
      edgekit profile bundles/m --shapes-sweep           # a shape envelope's MIN, OPT and MAX
    """
    import edgekit
    from edgekit.errors import UsageError

    if list_devices:
        from edgekit.profiling.devices import list_devices as _list

        rows = _list()
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        else:
            for d in rows:
                peaks = ", ".join(f"{k} {v:g}" for k, v in d["peak_gflops"].items())
                click.echo(f"{d['name']:18} {d['description']}: {peaks} GFLOP/s"
                           + (f", {d['bandwidth_gbs']} GB/s" if d["bandwidth_gbs"] else "") + f"  [{d['source']}]")
        return
    if not bundles:
        raise UsageError("name at least one bundle directory: edgekit profile bundles/m")
    progress = reporter(quiet, as_json)
    try:
        report = edgekit.profile(list(bundles), remote=remote, ssh_config=ssh_config, remote_python=remote_python,
                                 device=device, warmup=warmup, iterations=iterations, duration=duration, batch=batch,
                                 threads=threads, layer_iters=0 if no_layers else layer_iters, top=top,
                                 block_depth=block_depth, calib=calib, baseline=baseline, fail_over=fail_over, out=out,
                                 html=html, markdown=markdown, reporter=progress, input_shape=input_shape,
                                 shapes_sweep=shapes_sweep)
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(report.data, indent=2))
    elif not quiet:
        from edgekit.cli.render_profile import summary

        console().print(summary(report.data))
        for path, what in ((out, "json"), (html, "html"), (markdown, "markdown")):
            if path:
                click.echo(f"{what}: {path}")
    if report.regressed:
        from edgekit.profiling.regression import RegressionError, verdict

        raise RegressionError(f"median regressed beyond {report.regression['threshold_pct']:g}%: "
                              f"{verdict(report.regression)}", report)
