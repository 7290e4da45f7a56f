"""Quantization in the export pipeline, and `edgekit quantize` on an existing bundle.

The pipeline calls :func:`quantize_onnx_for_target` for ``--precision int8``: it turns the fp32
ONNX into the target's QDQ ONNX (see :mod:`edgekit.quant.int8`) and returns what the manifest
records under ``quantization``. :func:`quantize_bundle` re-exports a bundle's recorded model
(source, checkpoint, input shape, target, opset) at another precision, so a bundle quantized later
is the same as one exported quantized; the fp32 bundle is recorded as its reference.
"""
from __future__ import annotations

import sys
import types

from dataclasses import dataclass
from pathlib import Path

import onnx

from edgekit.calib import CalibrationSet
from edgekit.config import ExportConfig, Precision, Target, Task, Tolerance
from edgekit.errors import UsageError
from edgekit.progress import Reporter
from edgekit.quant.options import QuantOptions


def quantize_onnx_for_target(proto: onnx.ModelProto, config: ExportConfig, spec, calib: CalibrationSet,
                             reporter: Reporter, options: QuantOptions | None = None) -> tuple[onnx.ModelProto, dict]:
    """fp32 ONNX -> (the target's int8 QDQ ONNX, manifest ``quantization`` entry)."""
    from edgekit.quant.int8 import budget_for, quantize_int8

    options = options or QuantOptions()
    tol = config.tolerance or Tolerance.default(Precision.INT8).overridden(spec.tolerance, Precision.INT8)
    budget = budget_for(options, tol.agreement if tol.agreement is not None else 0.0, tol.cosine)
    batch = 1 if config.dynamic_batch else spec.input_shape[0]
    step = budget_resolution(spec.task, len(calib))
    if options.max_drop and step is not None and step > options.max_drop:
        reporter.note(f"--max-drop {options.max_drop:g} is finer than the calibration set can measure: with "
                      f"{len(calib)} images one changed top-1 is {step:.2f} points of agreement, so no change at all "
                      f"is allowed; {-(-100 // options.max_drop):.0f}+ images (--calib / --calib-size) give the budget "
                      f"its meaning")
    result = quantize_int8(proto, config.target, spec.task, calib, options, budget, config.threads, batch, reporter)
    if step is not None:
        result.info["budget"]["agreement_step_points"] = round(step, 4)  # what one changed top-1 costs
    speed = result.info["speed"]
    if speed["speedup"] < 1.0:
        reporter.note(f"int8 runs slower than fp32 on this machine ({speed['speedup']:.2f}x: {speed['fp32_ms']:.2f} -> "
                      f"{speed['int8_ms']:.2f} ms); small inputs and depthwise/elementwise-heavy models gain little "
                      f"from int8 GEMMs while paying for quantize/dequantize: consider fp16/bf16, or profile with "
                      f"`edgekit profile`")
    return result.model, result.info


def budget_resolution(task: Task, images: int) -> float | None:
    """Points of agreement one changed prediction costs on the calibration set: 100 / images for top-1
    (classification); None for segmentation, whose agreement is per pixel."""
    return 100.0 / images if task is Task.CLASSIFICATION and images else None


def recorded_config(bundle: Path, manifest: dict, out: Path, precision: Precision, **overrides) -> ExportConfig:
    """The ExportConfig that re-creates ``bundle``'s model at ``precision``."""
    model = manifest.get("model", {})
    source = model.get("source")
    if not source:
        raise UsageError(f"bundle {bundle} does not record its model source; export the model again with "
                         f"--precision {precision.value}")
    ckpt = (model.get("checkpoint") or {})
    if ckpt.get("path"):
        from edgekit.manifest import sha256_file

        path = Path(ckpt["path"])
        if not path.is_file():
            raise UsageError(f"bundle {bundle} was exported from checkpoint {path}, which no longer exists")
        if ckpt.get("sha256") and sha256_file(path) != ckpt["sha256"]:
            raise UsageError(f"checkpoint {path} changed since bundle {bundle} was exported (sha256 differs); "
                             f"export it again instead")
    export = manifest.get("export", {})
    options = {"device": manifest["runtime_options"]["device"]} if "device" in manifest.get("runtime_options", {}) else {}
    rw = manifest.get("rewrites", {})
    from edgekit.config import SourceOptions

    return ExportConfig(source=source, target=Target.parse(manifest["target"]), precision=precision, out=out,
                        checkpoint=Path(ckpt["path"]) if ckpt.get("path") else None,
                        input_shape=_requested_shape(model, export),
                        dynamic_batch=bool(export.get("dynamic_batch", False)), opset=int(export.get("opset", 17)),
                        rewrite=bool(rw.get("rules") or rw.get("swaps")) or _no_rewrites_exist(manifest["target"]),
                        target_options=options, source_options=SourceOptions.from_dict(model.get("source_options")),
                        **overrides)


def _requested_shape(model: dict, export: dict) -> tuple[int, ...] | None:
    """The --input-shape the bundle was exported with (None: the model's own, which gives the same shape);
    bundles from before it was recorded: the shape they have."""
    if "requested_input_shape" in export:
        return tuple(export["requested_input_shape"]) if export["requested_input_shape"] else None
    return tuple(model["input_shape"]) if model.get("input_shape") else None


def _no_rewrites_exist(target: str) -> bool:
    from edgekit.rewrite.registry import rules_for, swaps_for

    t = Target.parse(target)
    return not (rules_for(t) or swaps_for(t))


def quantize_bundle(bundle: str | Path, out: str | Path | None = None, precision: str | Precision = "int8", *,
                    calib: str | Path | None = None, calib_size: int | None = None,
                    options: QuantOptions | None = None, threads: int | None = None, verify: bool = True,
                    force: bool = False, reporter: Reporter | None = None):
    """Quantize the model of an existing (fp32) bundle to ``precision``; returns the new
    :class:`edgekit.pipeline.Bundle` (default ``<bundle>-<precision>``)."""
    from edgekit.manifest import read_manifest
    from edgekit.pipeline import export

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    precision = Precision.parse(precision)
    if precision is Precision.FP32:
        raise UsageError("edgekit quantize makes int8, fp16 or bf16 bundles; --precision fp32 is what export writes")
    out = Path(out) if out is not None else bundle.with_name(f"{bundle.name}-{precision.value}")
    config = recorded_config(bundle, manifest, out, precision, calib=Path(calib) if calib else None,
                             calib_size=calib_size, threads=threads, verify=verify, force=force)
    if precision is Precision.INT8 and manifest.get("precision") == "fp32":
        from dataclasses import replace

        # recorded in the manifest: `edgekit evaluate` measures agreement against the fp32 bundle
        options = replace(options or QuantOptions(), reference_bundle=str(bundle.resolve()))
    return export(config, reporter, options if precision is Precision.INT8 else None)


@dataclass(frozen=True)
class SensitivityReport:
    target: str
    blocks: list[dict]  # most sensitive first: block, nodes, agreement, cosine_min, cosine_mean
    recipe: str
    baseline: dict  # everything but the islands quantized
    images: int
    islands: dict

    def to_dict(self) -> dict:
        return {"target": self.target, "recipe": self.recipe, "images": self.images, "baseline": self.baseline,
                "blocks": self.blocks, "islands": self.islands}


def sensitivity_of_bundle(bundle: str | Path, *, calib: str | Path | None = None, calib_size: int | None = None,
                          options: QuantOptions | None = None, threads: int | None = None,
                          reporter: Reporter | None = None) -> SensitivityReport:
    """Block by block: agreement with fp32 on the calibration set when only that block is int8."""
    from edgekit.calib import load_calibration
    from edgekit.manifest import read_manifest
    from edgekit.onnx_export import export_onnx, prepare_for_deploy
    from edgekit.pipeline import _attach_plugins
    from edgekit.quant.calibrate import calibrate
    from edgekit.quant.islands import find_islands, summarize
    from edgekit.quant.recipes import candidates_for
    from edgekit.quant.scoring import Scorer
    from edgekit.quant.sensitivity import blocks, sensitivity
    from edgekit.rewrite import RewriteReport, apply_rewrites, apply_swaps
    from edgekit.sources import load_source

    rep = reporter or Reporter()
    options = options or QuantOptions()
    bundle = Path(bundle)
    config = recorded_config(bundle, read_manifest(bundle), bundle, Precision.INT8)
    with rep.step(f"load {config.source}"):
        src = load_source(config.source, config.checkpoint, config.input_shape, config.source_options)
        spec = src.spec
        data = load_calibration(calib, spec.preprocess, calib_size)
        model = prepare_for_deploy(src.model)
        rewrites = RewriteReport()
        if config.rewrite:
            model = apply_swaps(model, config.target, rewrites, Precision.INT8)
    with rep.step("export ONNX"):
        proto = export_onnx(model, spec.input_shape, config.opset, config.dynamic_batch).model
        if config.rewrite:
            proto = apply_rewrites(proto, config.target, rewrites, Precision.INT8)
        proto = _attach_plugins(proto)
    islands = find_islands(proto, config.target, Precision.INT8, options.keep_fp, options.default_islands)
    names = {i.node for i in islands}
    with rep.step(f"calibrate ({options.method_key()})", total=len(data)):
        ranges, _ = calibrate(proto, data.inputs, data.sha256, options, threads, rep.advance)
    scorer = Scorer(config.target, proto, data.inputs, spec.task, threads, 1 if config.dynamic_batch else spec.input_shape[0])
    # the recipe the target would use first (edgekit's own for ONNX Runtime and TensorRT, NNCF's for OpenVINO)
    candidate = candidates_for(config.target, proto, data.inputs, ranges, options)[0]
    baseline = scorer.score(candidate.make(names))
    n = len(blocks(proto, names))
    with rep.step(f"sensitivity of {n} blocks", total=n):
        ranked = sensitivity(candidate, scorer, proto, names, rep.advance)
    return SensitivityReport(config.target.value, [b.to_dict() for b in ranked], candidate.name, baseline.to_dict(),
                             len(data), summarize(islands))


class _CallableModule(types.ModuleType):
    """``edgekit.quantize`` is both this module and the API call ``edgekit.quantize(...)``: importing this module
    binds it onto ``edgekit`` over the function of the same name, so the module forwards calls to
    :func:`edgekit.api.quantize` (as ``edgekit.profile`` does)."""

    def __call__(self, *args, **kwargs):
        from edgekit.api import quantize as _quantize

        return _quantize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
