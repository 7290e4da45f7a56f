"""`edgekit quantize` and `edgekit quantize --sensitivity` on an existing bundle.

A bundle is quantized by exporting its model again at the new precision with the configuration its manifest
records (``export_config`` with ``model.source``, ``model.checkpoint``, ``model.source_options`` and ``target``:
input shape, every target option, opset, rewrites, ...), so a bundle quantized later is the same as one
exported quantized; the fp32 bundle is recorded as its reference. Bundles written before ``export_config`` was
recorded are re-created from the fields they have.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from edgekit.calib import load_calibration
from edgekit.config import ExportConfig, Precision, SourceOptions, Target
from edgekit.errors import UsageError
from edgekit.manifest import Manifest, ModelInfo, as_manifest, read_manifest, recorded_export_config, sha256_file
from edgekit.pipeline import Bundle, export
from edgekit.progress import Reporter
from edgekit.quant.calibrate import calibrate
from edgekit.quant.islands import find_islands, summarize
from edgekit.quant.options import QuantOptions
from edgekit.quant.recipes import candidates_for
from edgekit.quant.scoring import Scorer
from edgekit.quant.sensitivity import blocks, sensitivity

# what each run of `edgekit quantize` sets for itself rather than taking from the recorded export
_PER_RUN = dict(calib=None, calib_size=None, threads=None, verify=True, force=False, explain=False, tolerance=None)


def recorded_config(bundle: Path, manifest: Manifest, out: Path, precision: Precision, **overrides) -> ExportConfig:
    """The ExportConfig that re-creates ``bundle``'s model at ``precision``, written to ``out``; ``overrides``
    are this run's own settings (calib, calib_size, threads, verify, force)."""
    manifest = as_manifest(manifest)
    if not manifest.model.source:
        raise UsageError(f"bundle {bundle} does not record its model source; export the model again with "
                         f"--precision {precision.value}")
    config = recorded_export_config(manifest) or _config_from_fields(manifest)
    _check_checkpoint(bundle, manifest, config.checkpoint)
    return replace(config, precision=precision, out=out, **{**_PER_RUN, **overrides})


def _check_checkpoint(bundle: Path, manifest: Manifest, path: Path | None) -> None:
    if path is None:
        return
    if not path.is_file():
        raise UsageError(f"bundle {bundle} was exported from checkpoint {path}, which no longer exists")
    recorded = (manifest.model.checkpoint or {}).get("sha256")
    if recorded and sha256_file(path) != recorded:
        raise UsageError(f"checkpoint {path} changed since bundle {bundle} was exported (sha256 differs); "
                         f"export it again instead")


def _config_from_fields(manifest: Manifest) -> ExportConfig:
    """A bundle from before ``export_config`` was recorded: its configuration as far as its other fields say
    (of the target options, only OpenVINO's device was recorded)."""
    model = manifest.model
    ckpt = model.checkpoint or {}
    export_info = manifest.get("export") or {}
    options = {"device": manifest.runtime_options["device"]} if "device" in manifest.runtime_options else {}
    rw = manifest.get("rewrites") or {}
    return ExportConfig(source=model.source, target=Target.parse(manifest.target),
                        checkpoint=Path(ckpt["path"]) if ckpt.get("path") else None,
                        input_shape=_requested_shape(model, export_info),
                        dynamic_batch=bool(export_info.get("dynamic_batch", False)),
                        opset=int(export_info.get("opset", 17)),
                        rewrite=bool(rw.get("rules") or rw.get("swaps")) or _no_rewrites_exist(manifest.target),
                        target_options=options, source_options=SourceOptions.from_dict(model.source_options))


def _requested_shape(model: ModelInfo, export: dict) -> tuple[int, ...] | None:
    """The --input-shape the bundle was exported with (None: the model's own, which gives the same shape);
    bundles from before it was recorded: the shape they have."""
    if "requested_input_shape" in export:
        return tuple(export["requested_input_shape"]) if export["requested_input_shape"] else None
    return tuple(model.input_shape) if model.input_shape else None


def _no_rewrites_exist(target: str) -> bool:
    from edgekit.rewrite.registry import rules_for, swaps_for

    t = Target.parse(target)
    return not (rules_for(t) or swaps_for(t))


def quantize_bundle(bundle: str | Path, out: str | Path | None = None, precision: str | Precision = "int8", *,
                    calib: str | Path | None = None, calib_size: int | None = None,
                    options: QuantOptions | None = None, threads: int | None = None, verify: bool = True,
                    force: bool = False, reporter: Reporter | None = None) -> Bundle:
    """Quantize the model of an existing (fp32) bundle to ``precision``; returns the new
    :class:`edgekit.pipeline.Bundle` (default ``<bundle>-<precision>``)."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    precision = Precision.parse(precision)
    if precision is Precision.FP32:
        raise UsageError("edgekit quantize makes int8, fp16 or bf16 bundles; --precision fp32 is what export writes")
    out = Path(out) if out is not None else bundle.with_name(f"{bundle.name}-{precision.value}")
    config = recorded_config(bundle, manifest, out, precision, calib=Path(calib) if calib else None,
                             calib_size=calib_size, threads=threads, verify=verify, force=force)
    if precision is Precision.INT8 and manifest.precision == "fp32":
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
    from edgekit.plugins_bridge import attach_plugin_functions
    from edgekit.rewrite import RewriteReport, apply_rewrites, apply_swaps
    from edgekit.sources import load_source
    from edgekit.stages.onnx_export import export_onnx, prepare_for_deploy
    from edgekit.targets import get_backend

    rep = reporter or Reporter()
    options = options or QuantOptions()
    bundle = Path(bundle)
    config = recorded_config(bundle, read_manifest(bundle), bundle, Precision.INT8)
    plan = get_backend(config.target, config.target_options).int8
    with rep.step(f"load {config.source}"):
        src = load_source(config.source, config.checkpoint, config.input_shape, config.source_options)
        spec = src.spec
        data = load_calibration(calib, spec.preprocess, calib_size)
        model = prepare_for_deploy(src.model)
        rewrites = RewriteReport()
        if config.rewrite:
            model = apply_swaps(model, config.target, rewrites, Precision.INT8)
    with rep.step("export ONNX"):
        proto = export_onnx(model, spec.input_shape, config.opset, config.dynamic_batch,
                            output_names=spec.output_names).model
        if config.rewrite:
            proto = apply_rewrites(proto, config.target, rewrites, Precision.INT8)
        proto = attach_plugin_functions(proto)
    islands = find_islands(proto, plan.island_rules, Precision.INT8, options.keep_fp, options.default_islands)
    names = {i.node for i in islands}
    with rep.step(f"calibrate ({options.method_key()})", total=len(data)):
        ranges, _ = calibrate(proto, data.inputs, data.sha256, options, threads, rep.advance)
    batch = 1 if config.dynamic_batch else spec.input_shape[0]
    scorer = Scorer(plan.scoring, proto, data.inputs, spec.task, threads, batch)
    # the recipe the target would use first (edgekit's own for ONNX Runtime and TensorRT, NNCF's for OpenVINO)
    candidate = candidates_for(plan, proto, data.inputs, ranges, options)[0]
    baseline = scorer.score(candidate.make(names))
    n = len(blocks(proto, names))
    with rep.step(f"sensitivity of {n} blocks", total=n):
        ranked = sensitivity(candidate, scorer, proto, names, rep.advance)
    return SensitivityReport(config.target.value, [b.to_dict() for b in ranked], candidate.name, baseline.to_dict(),
                             len(data), summarize(islands))
