"""`edgekit debug BUNDLE`: the layer-by-layer report of a bundle that already exists (written with --no-verify,
or received from elsewhere): a reduced-precision bundle against the fp32 graph of its recorded source, an fp32
bundle against the PyTorch modules of that source."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import onnx

from edgekit.config import Precision
from edgekit.errors import UsageError
from edgekit.progress import Reporter


def debug_bundle(bundle: str | Path, reference: str | None = None, threads: int | None = None,
                 reporter: Reporter | None = None) -> dict:
    """The report ``<out>.parity-report.json`` holds for a failing export (``gate`` from the manifest,
    ``layerwise`` measured now), for ``bundle``. ``reference``: the model source to rebuild the fp32 graph from,
    when the recorded one cannot be loaded here."""
    from edgekit import runtime
    from edgekit.calib import load_image_sets
    from edgekit.debug.locate import locate, locate_against_torch
    from edgekit.quant.bundle import recorded_config

    rep = reporter or Reporter()
    path = Path(bundle)
    if not (path / "manifest.json").is_file():
        raise UsageError(f"{path} is not an edgekit bundle (no manifest.json); give the folder `edgekit export` wrote")
    runner = runtime.load(path, threads=threads)  # the schema, every file's sha256 and the runtime, checked
    try:
        manifest = runner.manifest
        precision = Precision.parse(manifest.precision)
        name = manifest.runtime.name
        if name not in ("onnxruntime", "openvino"):
            raise UsageError(f"edgekit debug reads ONNX Runtime and OpenVINO bundles (what runs here); {path} is "
                             f"{name}: export the model for --target onnx or openvino at the same precision and "
                             f"debug that")
        config = recorded_config(path, manifest, path, precision)  # its rules and swaps, as the export chose them
        if reference is not None:
            config = replace(config, source=reference, checkpoint=None)
        with rep.step(f"rebuild the fp32 graph of {config.source}"):
            try:
                fp32, model = fp32_graph(config)
            except UsageError as e:
                if reference is not None:
                    raise
                raise UsageError(f"the source bundle {path} records ({config.source}) cannot be loaded here ({e}); "
                                 f"pass --reference SOURCE") from None
        sets = load_image_sets(None, runner.preprocess, None)
        options = dict(manifest.runtime_options or {})
        artifact = path / manifest.file_paths[0]
        if name == "onnxruntime":
            candidate = onnx.load(str(artifact))
        else:  # the bundle's IR for what it computes; an fp32 IR is located on the fp32 graph's node names
            candidate = fp32 if precision is Precision.FP32 else artifact
        with rep.step(f"compare module by module on {len(sets.parity)} images"):
            if precision is Precision.FP32:
                located = locate_against_torch(model, candidate, name, options, sets.parity.inputs)
            else:
                failed = (manifest.get("parity") or {}).get("passed") is False
                located = locate(fp32, candidate, precision, name, options, sets.parity.inputs, gate_failed=failed)
    finally:
        runner.close()
    gate = manifest.get("parity") or {}
    return {"source": config.source, "target": manifest.target, "precision": precision.value, "gate": gate,
            "layerwise": located.to_dict(), "auto_fix": manifest.get("auto_fix") or []}


def fp32_graph(config) -> tuple[onnx.ModelProto, object]:
    """(The fp32 ONNX an export of ``config`` builds before its precision step: source, deploy mode, the target's
    swaps and rules (without ``config.leave_out``), plugin functions; the deploy-mode PyTorch model before any
    swap, which the gate compares with)."""
    import copy

    from edgekit.plugins_bridge import attach_plugin_functions
    from edgekit.rewrite import RewriteReport, apply_rewrites, apply_swaps
    from edgekit.sources import load_source
    from edgekit.stages.onnx_export import export_onnx, prepare_for_deploy

    src = load_source(config.source, config.checkpoint, config.input_shape, config.source_options)
    reference = prepare_for_deploy(src.model)
    model = reference
    rewrites = RewriteReport()
    if config.rewrite:
        model = apply_swaps(copy.deepcopy(model), config.target, rewrites, config.precision, config.leave_out)
    proto = export_onnx(model, src.spec.input_shape, config.opset, config.dynamic_batch,
                        output_names=src.spec.output_names).model
    if config.rewrite:
        proto = apply_rewrites(proto, config.target, rewrites, config.precision, config.leave_out)
    return attach_plugin_functions(proto), reference
