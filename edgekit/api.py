"""The Python API, one function per CLI command; strings are parsed into options here, at the edge."""
from __future__ import annotations

from pathlib import Path

from edgekit.config import (ExportConfig, Precision, SourceOptions, Target, Tolerance, parse_features, parse_rgb,
                            parse_shape, read_labels)
from edgekit.progress import Reporter


def export(source: str, target: str | Target = "onnx", out: str | Path = "bundles/model", *,
           precision: str | Precision = "fp32", checkpoint: str | Path | None = None,
           input_shape: str | tuple[int, ...] | None = None, dynamic_batch: bool = False,
           shapes: str | None = None, dynamic_hw: bool = False,
           calib: str | Path | None = None, calib_size: int | None = None, threads: int | None = None,
           opset: int = 17, verify: bool = True, force: bool = False, rewrite: bool = True,
           tolerance: Tolerance | None = None, target_options: dict | None = None,
           reporter: Reporter | None = None, method: str = "entropy", percentile: float = 99.99,
           keep_fp: tuple[str, ...] = (), max_drop: float | None = None,
           mean: str | tuple[float, float, float] | None = None, std: str | tuple[float, float, float] | None = None,
           resize: str | None = None, labels: str | Path | list[str] | tuple[str, ...] | None = None,
           num_classes: int | None = None, pretrained: bool = False,
           features: str | tuple[int, ...] | None = None, auto_fix: bool = False):
    """Export a model to a bundle (see `edgekit export --help`). Returns :class:`edgekit.pipeline.Bundle`.

    source: a zoo name, ``timm:<name>[.<tag>]``, ``hf:<repo id>``, a model directory (``save_pretrained`` /
    timm's ``save_for_hf``), ``package.module:factory`` or a ``.pt2`` file.
    mean, std ("R,G,B" on the 0-1 scale), resize (bilinear, bicubic, nearest), labels (a file with one label
    per line, or the labels themselves), num_classes: override what the model's files say (flag > model files
    > zoo config > ImageNet default). pretrained: timm's published weights, through the Hugging Face cache.
    features: stage indices ("1,2,3" or a tuple) to export a zoo or timm model's feature maps instead of its
    classifier (outputs ``stage1``...).
    shapes: a shape envelope "MIN:OPT:MAX" (three NCHW shapes, e.g. "1x3x256x256:1x3x512x512:1x3x1024x1024"):
    one bundle for every input size in it, checked by the gate at its corners; dynamic_hw: the envelope the
    model's planner chooses (half to twice its size, in its steps). See docs/shapes.md.
    method, percentile, max_drop: int8 only, see :func:`quantize`. keep_fp: node-name patterns kept in float
    (fp16, bf16 on ONNX Runtime; int8 everywhere). auto_fix: when the gate fails, repair and export again (``--auto-fix``):
    the first diverging module kept in float, ONNX Runtime's optimization level lowered past a fused kernel that
    disagrees (``target_options={"ort_optimization": ...}`` sets it by hand), or the rewrite that changed the
    numerics left out."""
    from edgekit.pipeline import export as _export

    if isinstance(input_shape, str):
        input_shape = parse_shape(input_shape)
    source_options = source_options_from(mean, std, resize, labels, num_classes, pretrained, features)
    config = ExportConfig(source=source, target=Target.parse(target), precision=Precision.parse(precision),
                          out=Path(out), checkpoint=Path(checkpoint) if checkpoint else None,
                          input_shape=tuple(input_shape) if input_shape else None, dynamic_batch=dynamic_batch,
                          shapes=shapes or None, dynamic_hw=dynamic_hw,
                          calib=Path(calib) if calib else None, calib_size=calib_size, threads=threads, opset=opset,
                          verify=verify, force=force, rewrite=rewrite, tolerance=tolerance,
                          target_options=dict(target_options or {}), source_options=source_options,
                          keep_fp=tuple(keep_fp), auto_fix=auto_fix)
    quant = _quant_options(method, percentile, keep_fp, True, max_drop) if config.precision is Precision.INT8 else None
    return _export(config, reporter, quant)


def source_options_from(mean=None, std=None, resize: str | None = None, labels=None, num_classes: int | None = None,
                        pretrained: bool = False, features: str | tuple[int, ...] | None = None) -> SourceOptions:
    """Strings (as typed) -> validated :class:`SourceOptions`; ``labels`` is a file path or a sequence of labels."""
    label_file = None
    if isinstance(labels, (str, Path)):
        label_file, labels = str(labels), read_labels(labels)
    elif labels is not None:
        labels = tuple(str(x) for x in labels)
    return SourceOptions(mean=parse_rgb(mean, "--mean") if mean is not None else None,
                         std=parse_rgb(std, "--std") if std is not None else None,
                         resize=resize.lower() if resize else None, labels=labels, labels_file=label_file,
                         num_classes=num_classes, pretrained=pretrained,
                         features=parse_features(features) if isinstance(features, str) else
                         (tuple(int(i) for i in features) if features is not None else None))


def _quant_options(method, percentile, keep_fp, default_islands, max_drop, cache: bool = True):
    from edgekit.quant import Method, QuantOptions

    return QuantOptions(method=Method.parse(method), percentile=float(percentile), keep_fp=tuple(keep_fp),
                        default_islands=default_islands, max_drop=max_drop, cache=cache)


def quantize(bundle: str | Path, out: str | Path | None = None, *, precision: str | Precision = "int8",
             calib: str | Path | None = None, calib_size: int | None = None, method: str = "entropy",
             percentile: float = 99.99, keep_fp: tuple[str, ...] = (), default_islands: bool = True,
             max_drop: float | None = None, threads: int | None = None, verify: bool = True, force: bool = False,
             cache: bool = True, reporter: Reporter | None = None):
    """Quantize an existing (fp32) bundle's model to int8 (or fp16 / bf16) into a new bundle
    (default ``<bundle>-<precision>``; see `edgekit quantize --help`). Returns :class:`edgekit.pipeline.Bundle`.

    method: minmax, percentile, entropy (KL) or mse activation ranges. keep_fp: node-name fnmatch
    patterns or ``op:<OpType>`` kept in float beyond the default islands. max_drop: points of
    agreement with fp32 the int8 model may lose on the calibration set; the most sensitive blocks
    are kept in float until it holds.
    """
    from edgekit.quant.bundle import quantize_bundle

    options = _quant_options(method, percentile, keep_fp, default_islands, max_drop, cache)
    return quantize_bundle(bundle, out, precision, calib=calib, calib_size=calib_size, options=options,
                           threads=threads, verify=verify, force=force, reporter=reporter)


def sensitivity(bundle: str | Path, *, calib: str | Path | None = None, calib_size: int | None = None,
                method: str = "entropy", percentile: float = 99.99, keep_fp: tuple[str, ...] = (),
                default_islands: bool = True, threads: int | None = None, cache: bool = True,
                reporter: Reporter | None = None):
    """Per block of the bundle's model: agreement with fp32 on the calibration set when only that block is int8,
    most sensitive first (`edgekit quantize --sensitivity`). Returns :class:`edgekit.quant.bundle.SensitivityReport`."""
    from edgekit.quant.bundle import sensitivity_of_bundle

    options = _quant_options(method, percentile, keep_fp, default_islands, None, cache)
    return sensitivity_of_bundle(bundle, calib=calib, calib_size=calib_size, options=options, threads=threads,
                                 reporter=reporter)


def evaluate(bundle: str | Path, data: str | Path, *, reference: str | Path | None = None, limit: int | None = None,
             threads: int | None = None, reporter: Reporter | None = None):
    """Top-1 or mIoU of a bundle on a labeled folder, and its agreement with the fp32 model
    (see `edgekit evaluate --help`). Returns :class:`edgekit.accuracy.EvalReport`."""
    from edgekit.accuracy import evaluate_bundle

    return evaluate_bundle(bundle, data, reference, limit, threads, reporter)


def diagnose(bundle: str | Path, *, reference: str | None = None, threads: int | None = None,
          reporter: Reporter | None = None) -> dict:
    """Module by module, where the reduced-precision ``bundle`` leaves the fp32 graph of its source, and why
    (`edgekit debug`; named apart from the package :mod:`edgekit.debug`); returns the report a failing export writes to ``<out>.parity-report.json``."""
    from edgekit.debug.bundle import debug_bundle

    return debug_bundle(bundle, reference=reference, threads=threads, reporter=reporter)


def inspect(bundle: str | Path) -> dict:
    """The bundle's manifest, with a ``files_ok`` check of every file's hash."""
    from edgekit.manifest import read_manifest, verify_files

    manifest = read_manifest(Path(bundle))
    problems = verify_files(Path(bundle), manifest)
    return {**manifest.to_dict(), "files_ok": not problems, "file_problems": problems}


def list_models(task: str | None = None, with_cost: bool = True, family: str | None = None) -> list[dict]:
    """The zoo: name, task, params, GMACs at the default resolution, default input size.

    Costs need each model built once; they are cached per model-file hash in ~/.cache/edgekit.
    """
    from edgekit.errors import UsageError
    from edgekit.models import _registry as reg

    families = sorted({reg.get_cfg(n).family for n in reg.list_models()})
    if family is not None and family not in families:
        raise UsageError(f"no zoo family {family!r}; choose from {', '.join(families)}")
    rows = []
    for name in reg.list_models(task):
        cfg = reg.get_cfg(name)
        if family is not None and cfg.family != family:
            continue
        row = {"name": name, "family": cfg.family, "task": cfg.task, "input_size": list(cfg.input_size),
               "num_classes": cfg.num_classes, "description": cfg.description, "shapes": _size_plan(cfg)}
        if with_cost:
            row.update(_model_cost(name))
        rows.append(row)
    return rows


def _hw(text: str | tuple[int, ...] | None) -> tuple[int, int] | None:
    """--input-shape for profile: "HxW" or "NxCxHxW" (a tuple likewise) -> (H, W)."""
    from edgekit.errors import UsageError

    if text is None:
        return None
    try:
        dims = tuple(int(d) for d in (text.lower().split("x") if isinstance(text, str) else text))
    except ValueError:
        dims = ()
    if len(dims) not in (2, 4) or any(d <= 0 for d in dims):
        raise UsageError(f"--input-shape {text!r}: give HxW or NxCxHxW, e.g. 384x640")
    return dims[-2:]


def _size_plan(cfg) -> dict:
    """What the shape planner says of a zoo model: which sizes one bundle can take, in which steps, and why, with
    the envelope ``--dynamic-hw`` would choose (docs/shapes.md)."""
    from edgekit.errors import UsageError
    from edgekit.shapes import envelope_for, zoo_rule

    rule = zoo_rule(cfg.family, cfg.size_divisor, cfg.window)
    if rule is None:
        return {}
    plan = rule.to_dict()
    try:
        envelope = envelope_for(None, True, False, (1, *cfg.input_size), rule, cfg.family)
        plan["dynamic_hw"] = {"min": list(envelope.min), "opt": list(envelope.opt), "max": list(envelope.max)}
    except UsageError as e:
        plan["dynamic_hw"] = None
        plan["refused"] = str(e)
    return plan


def _model_cost(name: str) -> dict:
    import hashlib
    import inspect as _inspect
    import json
    import os

    from edgekit.flops import count_flops, count_params
    from edgekit.models import _registry as reg

    source = Path(_inspect.getfile(reg._entry(name).factory)).read_bytes()
    key = hashlib.sha256(source + repr(reg.get_cfg(name)).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "model_cost" / f"{name}-{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    cfg = reg.get_cfg(name)
    model = reg.create_model(name).eval()
    cost = {"params_m": round(count_params(model) / 1e6, 2), "gmacs": round(count_flops(model, (1, *cfg.input_size)) / 2e9, 3)}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cost))
        os.replace(tmp, cache)
    except OSError:  # a read-only home is no reason to fail a listing
        pass
    return cost


def profile(bundles: str | Path | list, *, remote: str | None = None, ssh_config: str | Path | None = None,
            remote_python: str = "python3", device: str | None = None, warmup: int = 10, iterations: int | None = 100,
            duration: str | float | None = None, batch: str | int | tuple = 1, threads: str | int | tuple | None = None,
            layer_iters: int = 10, top: int = 10, block_depth: int = 2, calib: str | Path | None = None,
            baseline: str | Path | None = None, fail_over: str | float | None = None, out: str | Path | None = None,
            html: str | Path | None = None, markdown: str | Path | None = None, reporter: Reporter | None = None,
            input_shape: str | tuple[int, int] | None = None, shapes_sweep: bool = False):
    """Profile bundles here or on a device over SSH (see `edgekit profile --help`); writes the JSON
    (``out``), HTML and markdown reports asked for. Returns :class:`edgekit.profiling.ProfileReport`,
    whose ``regressed`` is True when a median regressed beyond ``fail_over`` against ``baseline``."""
    from edgekit.profiling.config import ProfileConfig, Remote, parse_duration, parse_percent, parse_sweep
    from edgekit.profiling.profiler import profile_bundles
    from edgekit.profiling.report import save

    paths = [bundles] if isinstance(bundles, (str, Path)) else list(bundles)
    config = ProfileConfig(
        bundles=tuple(Path(b) for b in paths), warmup=warmup, iterations=iterations, duration_s=parse_duration(duration),
        batches=parse_sweep(batch, "--batch"), threads=parse_sweep(threads, "--threads", allow_default=True),
        layer_iters=layer_iters, top=top, block_depth=block_depth, device=device,
        calib=Path(calib) if calib else None,
        remote=Remote.parse(remote, ssh_config, remote_python) if remote else None,
        baseline=Path(baseline) if baseline else None,
        fail_over_pct=parse_percent(fail_over) if fail_over is not None else None,
        input_shape=_hw(input_shape), shapes_sweep=shapes_sweep)
    if device is not None:
        from edgekit.profiling.devices import get_device

        get_device(device)  # an unknown name fails before anything runs
    report = profile_bundles(config, reporter)
    save(report, out=out, html=html, markdown=markdown)
    return report
