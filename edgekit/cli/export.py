"""`edgekit export`, `edgekit inspect`, `edgekit models`."""
from __future__ import annotations

import json
from pathlib import Path

import click

from edgekit.cli._core import choice, console, main, reporter, run
from edgekit.cli.quantize import quant_options
from edgekit.config import Precision, Target
from edgekit.targets import options_from_flags, target_flags


def target_flag_options(fn):
    """Each target's own flags, as its options declare them (:mod:`edgekit.targets.options`), in registry order;
    the command receives them as keyword arguments named by their target_options keys."""
    for _, flag in reversed(target_flags()):
        if flag.is_flag:
            kind = {"is_flag": True}
        elif flag.choices:
            kind = {"type": click.Choice(list(flag.choices)), "default": None}
        else:
            kind = {"type": click.Path(path_type=Path) if flag.type is Path else flag.type, "default": None}
        fn = click.option(flag.name, flag.key, help=flag.help, **kind)(fn)
    return fn


@main.command()
@click.argument("model")
@click.option("--target", "-t", type=choice(Target), default="onnx", show_default=True,
              help="onnx = ONNX Runtime; openvino; trt = TensorRT; coreml.")
@click.option("--precision", "-p", type=choice(Precision), default="fp32", show_default=True)
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Bundle directory [default: bundles/<model>-<target>-<precision>].")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="State dict or training checkpoint (read with weights_only=True); a timm model is built with the "
                   "classes its classifier has.")
@click.option("--pretrained", is_flag=True,
              help="timm:<name>[.<tag>]: timm's published weights, from the Hugging Face cache (downloaded if online).")
@click.option("--num-classes", type=int, default=None, help="Classes of the model (must agree with a checkpoint).")
@click.option("--labels", type=click.Path(path_type=Path), default=None,
              help="Text file, one label per line, one line per class (in class order).")
@click.option("--features", default=None, metavar="I,J,...",
              help="Export the backbone: these stages' feature maps (0-based, as timm's out_indices) as outputs "
                   "stage<I>..., for a zoo or timm model; e.g. --features 1,2,3.")
@click.option("--mean", default=None, metavar="R,G,B", help="Normalisation mean on the 0-1 scale, as timm writes it.")
@click.option("--std", default=None, metavar="R,G,B", help="Normalisation std on the 0-1 scale.")
@click.option("--resize", type=click.Choice(["bilinear", "bicubic", "nearest"], case_sensitive=False), default=None,
              help="Resampling when frames are resized to the input size [default: the model's].")
@click.option("--input-shape", default=None, help="NxCxHxW, e.g. 1x3x512x512 [default: the model's].")
@click.option("--dynamic-batch", is_flag=True, help="Export with a dynamic batch dimension.")
@click.option("--shapes", default=None, metavar="MIN:OPT:MAX",
              help="Shape envelope: one bundle for every input in it, NxCxHxW each (e.g. "
                   "1x3x256x256:1x3x512x512:1x3x1024x1024); the gate runs at its corners; onnx, openvino, trt "
                   "(its optimization profile), coreml (RangeDim), executorch (fp32, fp16). See docs/shapes.md.")
@click.option("--dynamic-hw", is_flag=True,
              help="Shape envelope chosen by the model's planner: half to twice its input size, in its size steps.")
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Images for the parity gate; for int8 every 4th is held out for the gate and the rest calibrate "
                   "[default: the bundled photographs; int8 calibrates on the bundled generated images].")
@click.option("--calib-size", type=int, default=None, help="Sample this many calibration items (seeded).")
@quant_options
@click.option("--threads", type=int, default=None, help="Runtime threads for the parity run.")
@click.option("--opset", type=int, default=17, show_default=True)
@target_flag_options
@click.option("--auto-fix", is_flag=True,
              help="When the parity gate fails, repair and export again (up to 3 repairs): the first diverging "
                   "module kept in float, ONNX Runtime's optimization level lowered past a fused kernel that "
                   "disagrees, or the rewrite that changed the numerics left out; the manifest records what and why.")
@click.option("--no-verify", is_flag=True, help="Write the bundle even if the parity gate fails (figures are still recorded).")
@click.option("--no-rewrite", is_flag=True, help="Skip edgekit's graph rewrites and module swaps (naive export).")
@click.option("--explain", is_flag=True, help="List every rewrite rule with its count, and why one did not apply.")
@click.option("--force", is_flag=True, help="Replace the output directory if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
@run
def export(model, target, precision, out, checkpoint, pretrained, num_classes, labels, features, mean, std, resize,
           input_shape,
           dynamic_batch, shapes, dynamic_hw, calib, calib_size, method, percentile, keep_fp, max_drop, threads, opset, auto_fix, no_verify,
           no_rewrite, explain, force, quiet, as_json, **flag_values):
    """Export MODEL to a bundle: a zoo name, timm:<name>[.<tag>], hf:<repo id>, a model directory
    (transformers save_pretrained or timm save_for_hf), package.module:factory, or a .pt2 file."""
    import edgekit
    from edgekit.errors import ParityError

    target_options = options_from_flags(Target.parse(target), flag_values)  # each target's flags, checked
    name = Path(model).name if Path(model).is_dir() else model
    out = out or Path("bundles") / f"{name.replace(':', '_').replace('/', '_')}-{target}-{precision}"
    progress = reporter(quiet, as_json)
    try:
        bundle = edgekit.export(model, target, out, precision=precision, checkpoint=checkpoint, input_shape=input_shape,
                                dynamic_batch=dynamic_batch, shapes=shapes, dynamic_hw=dynamic_hw, calib=calib, calib_size=calib_size, threads=threads,
                                opset=opset, verify=not no_verify, force=force, rewrite=not no_rewrite,
                                target_options=target_options, reporter=progress, method=method,
                                percentile=percentile, keep_fp=keep_fp, max_drop=max_drop, mean=mean, std=std,
                                resize=resize, labels=labels, num_classes=num_classes, pretrained=pretrained,
                                features=features, auto_fix=auto_fix)
    except ParityError as e:
        progress.close()
        if e.report is not None and not quiet:
            console(stderr=True).print(_parity_table(e.report.to_dict()))
        raise
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(bundle.manifest.to_dict(), indent=2))
        return
    if not quiet:
        from edgekit.cli import render

        console().print(render.manifest_summary(bundle.manifest, explain=explain))
    click.echo(f"bundle: {bundle.path}")


def _parity_table(parity: dict):
    from edgekit.cli import render

    return render.parity_table(parity)


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@run
def inspect(bundle, as_json):
    """Show what a bundle is and how well it matches PyTorch."""
    import edgekit
    from edgekit.cli import render

    info = edgekit.inspect(bundle)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    console().print(render.manifest_summary(info, explain=True))
    if not info["files_ok"]:
        from edgekit.errors import UsageError

        raise UsageError(f"bundle {bundle} does not match its manifest: {'; '.join(info['file_problems'])}")


@main.command("models")
@click.option("--task", type=click.Choice(["classification", "segmentation"]), default=None)
@click.option("--family", default=None, help="Only this family (efficientvit, swin, segformer, ...).")
@click.option("--json", "as_json", is_flag=True)
@run
def models_cmd(task, family, as_json):
    """List the zoo: name, task, params, GMACs at the default resolution, default input size."""
    import edgekit
    from edgekit.cli import render

    rows = edgekit.list_models(task, family=family)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    console().print(render.models_table(rows))
