"""`edgekit tune` (the fastest deployment within an accuracy budget) and `edgekit sweep` (a YAML grid of models,
targets, precisions and devices, on a local pool or Ray)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edgekit.cli._core import main, reporter, run
from edgekit.config import Precision, Target


@main.command()
@click.argument("model")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True,
              help="Where the chosen bundle goes (with tune.json, tune.md and tune.html beside its model).")
@click.option("--target", "-t", "targets", multiple=True, type=click.Choice([t.value for t in Target]),
              help="Only these targets (repeatable) [default: every target that runs on the device].")
@click.option("--precision", "-p", "precisions", multiple=True, type=click.Choice([p.value for p in Precision]),
              help="Only these precisions (repeatable) [default: every one each target supports there].")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Labeled folder (as `edgekit evaluate` reads): judge by top-1 / mIoU [default: the parity gate's "
                   "agreement with PyTorch].")
@click.option("--max-drop", type=float, default=1.0, show_default=True, metavar="POINTS",
              help="Accuracy budget: points a candidate may lose against fp32 (also int8's quantization budget).")
@click.option("--remote", default=None, metavar="USER@HOST[:PORT]", help="Time on this device over SSH.")
@click.option("--ssh-config", type=click.Path(path_type=Path), default=None, help="ssh config file (ssh -F).")
@click.option("--remote-python", default="python3", show_default=True, help="Python interpreter on the device.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="As `edgekit export`.")
@click.option("--input-shape", default=None, help="NxCxHxW, as `edgekit export`.")
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Parity and calibration images, as `edgekit export`.")
@click.option("--mean", default=None, metavar="R,G,B", help="As `edgekit export`.")
@click.option("--std", default=None, metavar="R,G,B", help="As `edgekit export`.")
@click.option("--resize", type=click.Choice(["bilinear", "bicubic", "nearest"]), default=None,
              help="As `edgekit export`.")
@click.option("--labels", type=click.Path(path_type=Path), default=None, help="As `edgekit export`.")
@click.option("--num-classes", type=int, default=None, help="As `edgekit export`.")
@click.option("--iterations", "-n", type=int, default=50, show_default=True, help="Timed runs per candidate.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs first.")
@click.option("--threads", type=int, default=None, help="Runtime threads for timing [default: the runtime's].")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="Export cache [default: $EDGEKIT_CACHE/tune, ~/.cache/edgekit/tune].")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (every row, the choice, why) as JSON.")
@run
def tune(model, out, targets, precisions, data, max_drop, remote, ssh_config, remote_python, checkpoint, input_shape,
         calib, mean, std, resize, labels, num_classes, iterations, warmup, threads, cache, force, quiet, as_json):
    """The fastest deployment of MODEL within an accuracy budget, on this machine or a device over SSH.

    \b
      edgekit tune efficientvit_b0 --out bundles/best
      edgekit tune my.module:model --data val/ --max-drop 0.5 --out bundles/best
      edgekit tune swin_tiny --remote user@nuc --target openvino --out bundles/swin-nuc
    """
    from edgekit.tune.tuner import tune as run_tune

    device = None
    if remote:
        from edgekit.profiling.config import Remote

        device = Remote.parse(remote, ssh_config, remote_python)
    options = {k: str(v) if isinstance(v, Path) else v for k, v in dict(
        checkpoint=checkpoint, input_shape=input_shape, calib=calib, mean=mean, std=std, resize=resize,
        labels=labels, num_classes=num_classes, max_drop=max_drop).items() if v is not None}
    progress = reporter(quiet, as_json)
    try:
        result = run_tune(model, out, targets=targets, precisions=precisions, data=data, max_drop=max_drop,
                          remote=device, cache=cache, export_options=options, iterations=iterations, warmup=warmup,
                          threads=threads, force=force, reporter=progress)
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    if not quiet:
        from edgekit.tune.report import markdown

        click.echo(markdown(result["rows"], ("target", "precision", "status", "latency_ms", "metric", "value", "drop",
                                             "pareto", "reason")))
        click.echo(f"chosen: {result['why']}")
        click.echo(f"bundle: {out}  (table: {out / 'tune.md'}, plot: {out / 'tune.html'})")


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True,
              help="Results folder: results.json / .csv, best.md, pareto-<device>.png, cells/ and the export cache. "
                   "Run again with the same --out to resume.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: a process pool sized to the cores; ray: Ray tasks (pip install 'edgekit[ray]').")
@click.option("--ray-address", default=None, metavar="auto|HOST:PORT",
              help="The Ray cluster to join [default: start a local one].")
@click.option("--workers", type=int, default=None, help="Local export processes [default: the cores].")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@run
def sweep(spec, out, executor, ray_address, workers, quiet, as_json):
    """Models x targets x precisions x devices from SPEC (YAML), one results table; resumable.

    \b
    SPEC keys: models, targets, precisions; optional devices (local, user@host[:port]), data, calib,
    max_drop, iterations, warmup, ssh_config, remote_python. A failing cell is recorded and the sweep goes
    on; the exit code is 1 when any cell failed.
    """
    from edgekit.tune.sweep import load_spec, run_sweep

    progress = reporter(quiet, as_json)
    try:
        result = run_sweep(load_spec(spec), out, executor, ray_address, workers, progress)
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(result["rows"], indent=2, default=str))
    elif not quiet:
        from edgekit.tune.report import markdown

        click.echo(markdown(result["rows"]))
        click.echo(f"results: {out / 'results.json'}, {out / 'results.csv'}, {out / 'best.md'}"
                   + (f" ({result['done_before']} cells were already done)" if result["done_before"] else ""))
    if result["failed"]:
        click.echo(f"error: {result['failed']} cells failed (their reasons are in {out / 'results.json'})", err=True)
        sys.exit(1)
