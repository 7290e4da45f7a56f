"""`edgekit quantize` and `edgekit evaluate`."""
from __future__ import annotations

import json
from pathlib import Path

import click

from edgekit.cli._core import choice, console, main, reporter, run


def quant_options(fn):
    """The int8 options `export` and `quantize` share."""
    from edgekit.quant.options import Method

    for option in reversed((
        click.option("--method", type=choice(Method), default="entropy", show_default=True,
                     help="Activation ranges: minmax, percentile, entropy (KL, TensorRT's) or mse."),
        click.option("--percentile", type=float, default=99.99, show_default=True,
                     help="For --method percentile: the percentile kept on each side."),
        click.option("--keep-fp", "keep_fp", multiple=True, metavar="PATTERN",
                     help="Keep matching nodes in float: node-name fnmatch pattern (e.g. '*/head/*') or op:<OpType>. "
                          "Repeatable."),
        click.option("--max-drop", type=float, default=None, metavar="POINTS",
                     help="Accuracy budget: points of agreement with fp32 (calibration set) int8 may lose; the most "
                          "sensitive blocks are kept in float until it holds [default: the int8 parity tolerance]."),
    )):
        fn = option(fn)
    return fn


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--precision", "-p", type=click.Choice(["int8", "fp16", "bf16"], case_sensitive=False), default="int8",
              show_default=True)
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Calibration set: image folder, video, .npy/.npz or list file; every 4th item is held out for the "
                   "parity gate [default: calibrate on the bundled generated images, gate on the bundled photographs].")
@click.option("--calib-size", type=int, default=None, help="Sample this many calibration items (seeded).")
@quant_options
@click.option("--no-default-islands", is_flag=True,
              help="Quantize LayerNorm, Softmax, attention, GELU, stem and head too (only --keep-fp stays float).")
@click.option("--sensitivity", is_flag=True,
              help="Only measure: per block, agreement with fp32 when that block alone is int8; print a ranked table.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="New bundle directory [default: <BUNDLE>-<precision>].")
@click.option("--threads", type=int, default=None, help="Runtime threads for calibration, scoring and parity.")
@click.option("--no-verify", is_flag=True, help="Write the bundle even if the parity gate fails.")
@click.option("--no-cache", is_flag=True, help="Recalibrate even when cached ranges exist.")
@click.option("--force", is_flag=True, help="Replace the output directory if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@run
def quantize(bundle, precision, calib, calib_size, method, percentile, keep_fp, max_drop, no_default_islands,
             sensitivity, out, threads, no_verify, no_cache, force, quiet, as_json):
    """Quantize the model of an existing fp32 BUNDLE (int8 with calibration, or fp16 / bf16) into a new bundle."""
    import edgekit
    from edgekit.cli import render

    progress = reporter(quiet, as_json)
    common = dict(calib=calib, calib_size=calib_size, method=method, percentile=percentile, keep_fp=keep_fp,
                  default_islands=not no_default_islands, threads=threads, cache=not no_cache, reporter=progress)
    try:
        if sensitivity:
            report = edgekit.sensitivity(bundle, **common)
        else:
            result = edgekit.quantize(bundle, out, precision=precision, max_drop=max_drop, verify=not no_verify,
                                      force=force, **common)
    finally:
        progress.close()
    if sensitivity:
        if as_json:
            click.echo(json.dumps(report.to_dict(), indent=2))
        else:
            console().print(render.sensitivity_table(report.to_dict()))
        return
    if as_json:
        click.echo(json.dumps(result.manifest.to_dict(), indent=2))
        return
    if not quiet:
        console().print(render.manifest_summary(result.manifest))
    click.echo(f"bundle: {result.path}")


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Labeled folder: DIR/<class>/*.png (classification) or DIR/images + DIR/masks (segmentation).")
@click.option("--reference", default=None,
              help="fp32 reference for agreement: a bundle directory or a model source [default: the bundle's "
                   "recorded fp32 bundle or model].")
@click.option("--limit", type=int, default=None, help="Evaluate only the first N images.")
@click.option("--threads", type=int, default=None)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@run
def evaluate(bundle, data, reference, limit, threads, quiet, as_json):
    """Top-1 (classification) or mIoU (segmentation) of BUNDLE on a labeled folder, and agreement with fp32."""
    import edgekit
    from edgekit.cli import render

    progress = reporter(quiet, as_json)
    try:
        report = edgekit.evaluate(bundle, data, reference=reference, limit=limit, threads=threads, reporter=progress)
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    console().print(render.eval_table(report.to_dict(), str(bundle)))

