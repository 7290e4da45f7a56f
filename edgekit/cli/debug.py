"""`edgekit debug`: where a bundle leaves its fp32 graph (or, fp32, the PyTorch model), module by module."""
from __future__ import annotations

import json
from pathlib import Path

import click

from edgekit.cli._core import console, main, reporter, run


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--reference", default=None, metavar="SOURCE",
              help="Model source to rebuild the fp32 graph from [default: the bundle's recorded source].")
@click.option("--html", type=click.Path(path_type=Path), default=None,
              help="Write the report as a page with the plot of error by module.")
@click.option("--threads", type=int, default=None)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@run
def debug(bundle, reference, html, threads, quiet, as_json):
    """Compare BUNDLE (e.g. written with --no-verify) module by module with its source: an fp16 / bf16 / int8
    bundle with the fp32 graph (the first diverging module, why, the --keep-fp pattern that keeps it in float),
    an fp32 bundle with the PyTorch modules."""
    import edgekit

    progress = reporter(quiet, as_json)
    try:
        data = edgekit.diagnose(bundle, reference=reference, threads=threads, reporter=progress)
    finally:
        progress.close()
    if html is not None:
        from edgekit.debug.report import write_html

        write_html(html, data)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=float))
        return
    from edgekit.cli import render

    console().print(render.layerwise_table(data))
    if html is not None:
        click.echo(f"report: {html}")
