"""The export pipeline (`edgekit export`): source -> prepare -> ONNX -> rewrite -> build -> parity gate -> bundle."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from edgekit.calib import load_image_sets
from edgekit.config import ExportConfig, Precision, Target, Tolerance
from edgekit.debug.fusion import find_passing_level, level_name
from edgekit.errors import ParityError, UsageError, stage
from edgekit.manifest import (Manifest, export_config_record, file_entries, host_info, read_manifest, sha256_file,
                              write_manifest)
from edgekit.plugins_bridge import attach_plugin_functions, uses_plugins
from edgekit.progress import Reporter
from edgekit.quant.int8 import quantize_onnx_for_target
from edgekit.rewrite import RewriteReport, apply_rewrites, apply_swaps
from edgekit.sources import load_source
from edgekit.stages.bundle import check_destination, staged_bundle
from edgekit.stages.onnx_export import export_onnx, prepare_for_deploy
from edgekit.stages.parity import ParityReport, run_parity, torch_reference
from edgekit.targets import get_backend
from edgekit.targets.onnxruntime.options import LEVELS
from edgekit.version import __version__


@dataclass
class Bundle:
    path: Path
    manifest: Manifest

    @property
    def parity(self) -> dict:
        return self.manifest.parity or {}


AUTO_FIX_ROUNDS = 3  # modules kept in float, one a round, before --auto-fix gives up


def export(config: ExportConfig, reporter: Reporter | None = None, quant=None) -> Bundle:
    """Export ``config.source`` for ``config.target``; returns the written bundle.

    quant: :class:`edgekit.quant.QuantOptions` for int8 (method, islands, budget); None = defaults.

    Raises UsageError for bad input, ParityError when the artifact diverges from PyTorch beyond
    tolerance (unless ``config.verify`` is False), EdgekitFailure for other failed steps. On any
    error nothing is left at ``config.out``. A failing fp16 / bf16 / int8 gate is located layer by layer
    (:mod:`edgekit.debug.locate`): the error names the first diverging module and the ``--keep-fp`` pattern
    that keeps it in float, and with ``config.auto_fix`` that pattern is applied and the export run again
    (up to :data:`AUTO_FIX_ROUNDS` modules), the manifest recording what was changed and why.
    """
    fixes: list[dict] = []
    rep = reporter or Reporter()
    for _ in range(AUTO_FIX_ROUNDS + 1):
        try:
            return _export_once(config, reporter, quant, fixes)
        except ParityError as e:
            diagnosis = (e.locator.diagnosis if e.locator is not None else None) or {}
            patterns = tuple(p for p in diagnosis.get("keep_fp", ()) if p not in config.keep_fp) \
                if keep_fp_applies(config) else ()
            if patterns:
                if not config.auto_fix or len(fixes) >= AUTO_FIX_ROUNDS:
                    raise
                fixes.append({"module": diagnosis["module"], "kind": diagnosis["kind"], "cause": diagnosis["cause"],
                              "keep_fp": list(patterns)})
                rep.note(f"--auto-fix: keeping {diagnosis['module']} in float ({', '.join(patterns)}): "
                         f"{diagnosis['cause']}")
                config = replace(config, keep_fp=config.keep_fp + patterns)
                continue
            level = diagnosis.get("ort_optimization")
            if level:
                if not config.auto_fix or len(fixes) >= AUTO_FIX_ROUNDS:
                    raise
                fixes.append({"kind": "fused_kernel", "cause": diagnosis["cause"], "ort_optimization": level})
                rep.note(f"--auto-fix: ONNX Runtime optimization level {level}: {diagnosis['cause']}")
                config = replace(config, target_options={**config.target_options, "ort_optimization": level})
                continue
            if not (config.rewrite and e.applied):
                raise
            if not config.auto_fix:  # the bisection costs an export per rewrite: only when asked to repair
                raise ParityError(f"{e}; if one of the {len(e.applied)} rewrites applied changed the numerics, "
                                  f"--auto-fix finds it (an export without each) and leaves it out", e.report,
                                  e.locator, e.applied) from None
            culprit = _bisect_rewrites(config, e.applied, quant, rep) if len(fixes) < AUTO_FIX_ROUNDS else None
            if culprit is None:
                raise
            cause = (f"the rewrite {culprit} changes the numerics: the same export without it passes the gate "
                     f"(found by leaving out each of the {len(e.applied)} rewrites applied, one at a time)")
            fixes.append({"rewrite": culprit, "kind": "rewrite_changed_numerics", "cause": cause})
            rep.note(f"--auto-fix: leaving out {culprit}: {cause}")
            config = replace(config, leave_out=config.leave_out + (culprit,))
    raise AssertionError("unreachable")  # the loop returns or raises


def keep_fp_applies(config: ExportConfig) -> bool:
    """Whether float islands of the user's (``--keep-fp``) reach this export: int8 everywhere, fp16 on ONNX
    Runtime (the other targets' fp16 / bf16 conversions choose their islands themselves)."""
    return config.precision is Precision.INT8 or (config.precision is Precision.FP16 and config.target is Target.ONNX)


def _bisect_rewrites(config: ExportConfig, applied: tuple[str, ...], quant, rep: Reporter) -> str | None:
    """The one rewrite (rule or swap) whose absence makes the failing export pass, trying each applied one left
    out in turn (a full export into a scratch folder each); None when no single one does."""
    import tempfile

    with rep.step(f"find the rewrite that changed the numerics ({len(applied)} applied)"), \
            tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(applied):
            trial = replace(config, leave_out=config.leave_out + (name,), auto_fix=False, verify=True, force=True,
                            out=Path(tmp) / f"without-{i}")
            try:
                _export_once(trial, None, quant, [])
            except ParityError:
                continue
            return name
    return None


def _export_once(config: ExportConfig, reporter: Reporter | None, quant, fixes: list[dict]) -> Bundle:
    rep = reporter or Reporter()
    backend = get_backend(config.target, config.target_options)
    if config.precision not in backend.precisions:
        raise UsageError(f"target {config.target.value} does not support precision {config.precision.value}; "
                         f"choose one of {', '.join(p.value for p in backend.precisions)}")
    missing = backend.missing()
    if missing:
        raise UsageError(missing)
    check_destination(config.out, config.force)
    if config.threads is not None and config.threads <= 0:
        raise UsageError(f"--threads must be positive, got {config.threads}")

    with rep.step(f"load {config.source}"), stage("load"):
        src = load_source(config.source, config.checkpoint, _load_shape(config), config.source_options)
        src, envelope = _envelope(config, backend, src)
        spec = src.spec
        dynamic_batch = config.dynamic_batch or (envelope is not None and envelope.dynamic_batch)
        backend.check_model(spec, dynamic_batch)  # target options against the model, before the slow steps
    # read the parity (and int8 calibration) images before the slow steps, so a bad --calib fails fast
    int8 = config.precision is Precision.INT8
    with rep.step("read parity and calibration images" if int8 else "read parity images"), stage("parity"):
        sets = load_image_sets(config.calib, spec.preprocess, config.calib_size, int8=int8)
        if int8 and envelope is not None and envelope.dynamic_hw:  # ranges over every size the bundle takes
            from edgekit.shapes import mixed_sizes

            sets = replace(sets, calibration=mixed_sizes(sets.calibration, envelope, spec.preprocess))
    if spec.origin.get("weights", "").startswith("random"):
        rep.note(f"{config.source} has random weights ({spec.origin['weights']}): the bundle is for checking the "
                 f"export, not for predictions")

    if config.keep_fp and not keep_fp_applies(config):
        if config.precision is Precision.FP32:
            raise UsageError("--keep-fp keeps nodes in float at reduced precision (int8, or fp16 on --target onnx); "
                             "an fp32 export is float throughout: drop it")
        raise UsageError(f"--keep-fp at {config.precision.value} applies to --target onnx (and to int8 on every "
                         f"target); {config.target.value} chooses its {config.precision.value} islands itself")
    if int8 and config.keep_fp:
        from edgekit.quant import QuantOptions

        base = quant or QuantOptions()
        quant = replace(base, keep_fp=tuple(dict.fromkeys(base.keep_fp + config.keep_fp)))
    rewrites = RewriteReport()
    with rep.step("prepare for deploy"), stage("prepare"):
        model = prepare_for_deploy(src.model)
        reference = torch_reference(model)  # deploy-mode PyTorch, before any swap, is the ground truth
        if config.rewrite:
            import copy

            model = apply_swaps(copy.deepcopy(model), config.target, rewrites, config.precision, config.leave_out)
    # a target that converts the torch model itself (CoreML) declares needs_torch and gets no ONNX
    exported, proto, quant_info, fp32_proto = ((None, None, None, None) if backend.needs_torch else _onnx_for_target(
        config, backend, model, spec, sets.calibration, rewrites, rep, quant, envelope))

    with staged_bundle(config.out, config.force) as staging:
        with rep.step(f"build {config.target.value} {config.precision.value}"), stage("build"):
            if backend.needs_torch:
                job = _pt2e_job(config, backend, spec, sets.calibration, rep, quant) if int8 else None
                built = backend.build_torch(model, spec, staging, config.precision, int8=job)
            else:
                built = backend.build(proto, spec, staging, config.precision, config.keep_fp)
        for note in built.notes:
            rep.note(note)
        tolerance = config.tolerance or Tolerance.default(config.precision).overridden(spec.tolerance, config.precision)
        # A target whose artifact cannot run on this machine (a TensorRT engine without a GPU, CoreML off macOS)
        # says why, and may offer a stand-in that can (the TensorRT-flavoured ONNX in ONNX Runtime): its figures
        # are recorded as what they are. Otherwise the figures are always measured; --no-verify only turns off the gate.
        with stage("parity"):
            why_not = backend.cannot_run_here(built)
            stand_in = backend.open_stand_in(staging, built, config.threads) if why_not else None
        corner_failures: list[str] = []
        if why_not and stand_in is None:
            report = None
            parity = {"measured": False, "reason": f"{why_not}; parity was not measured",
                      "gate": "not run (nothing runnable here)"}
        else:
            with rep.step(f"parity vs PyTorch on {len(sets.parity)} images", total=len(sets.parity)), stage("parity"):
                report = measure_parity(backend, staging, built, reference, sets.parity.inputs, spec, tolerance,
                                        1 if dynamic_batch else spec.input_shape[0], config.threads,
                                        rep.advance, runner=stand_in[0] if stand_in else None)
            for warning in report.warnings:
                rep.note(f"parity: {warning}")
            parity = {"measured": True, "gate": "enforced" if config.verify else "disabled (--no-verify)",
                      "set": sets.describe(), **report.to_dict()}
            if stand_in:
                parity.update(measured_on=stand_in[1], artifact={"measured": False, "reason": why_not})
            if envelope is not None:
                corners, corner_failures = _corner_parity(config, backend, staging, built, reference, spec, tolerance,
                                                          envelope, report, rep, stand_in, sets.parity)
                parity["corners"] = corners
        with stage("bundle"):
            manifest = _manifest(config, spec, exported, rewrites, built, parity, proto, staging,
                                 quant_info or built.quantization, model, envelope)
            if fixes:
                manifest["auto_fix"] = fixes
            write_manifest(staging, manifest)
        if envelope is not None and report is not None and report.passed and corner_failures and config.verify:
            raise ParityError(f"parity gate failed for {config.target.value} {config.precision.value} inside the "
                              f"shape envelope: {'; '.join(corner_failures)}; no bundle written. Narrow --shapes to "
                              f"the sizes that pass, or pass --no-verify to write it anyway", report)
        if report is not None and not report.passed and config.verify:
            located = _locate(config, fp32_proto, proto, built, staging, sets.parity.inputs, rep, reference.model)
            if located is not None and _fusion_may_cause(located, built):
                def gate(level: str) -> ParityReport:
                    options = {**built.options, "graph_optimization_level": LEVELS[level]}
                    return measure_parity(backend, staging, replace(built, options=options), reference,
                                          sets.parity.inputs, spec, tolerance,
                                          1 if config.dynamic_batch else spec.input_shape[0], config.threads)

                with rep.step("run ONNX Runtime at lower optimization levels"), stage("parity"):
                    found = find_passing_level(gate, staging / built.files[0],
                                               level_name(built.options["graph_optimization_level"]))
                if found is not None:
                    located.diagnosis = found.diagnosis(located.first.module if located.first else "")
            where = ""
            if located is not None:
                path = Path(str(config.out) + ".parity-report.json")
                _write_report(path, config, report, located, fixes)
                diagnosis = located.diagnosis or {}
                fix = ""
                if diagnosis.get("keep_fp") and keep_fp_applies(config) and not config.auto_fix:
                    fix = f"; keep it in float with --keep-fp '{diagnosis['keep_fp'][0]}' or pass --auto-fix"
                elif diagnosis.get("ort_optimization") and not config.auto_fix:
                    fix = f"; pass --ort-optimization {diagnosis['ort_optimization']} or --auto-fix"
                where = f"; {located.line()}{fix}; report: {path}"
            applied = tuple(n for n, c in {**rewrites.swaps, **rewrites.rules}.items() if c > 0)
            raise ParityError(f"parity gate failed for {config.target.value} {config.precision.value}: "
                              f"{'; '.join(report.failures)} ({report.summary()}){where}; no bundle written. "
                              f"Pass --no-verify to write it anyway", report, located, applied)
    return Bundle(Path(config.out), read_manifest(config.out))


def _load_shape(config: ExportConfig) -> tuple[int, ...] | None:
    """The size the source is loaded at: --input-shape, else --shapes' OPT (the export size), else the model's."""
    if config.input_shape or not config.shapes:
        return config.input_shape
    from edgekit.shapes import parse

    return parse(config.shapes)[1]


def _envelope(config: ExportConfig, backend, src):
    """(source, envelope): the shape envelope asked for (``--shapes`` / ``--dynamic-hw``, checked against the model's
    size rule) and the source rebuilt at its OPT size, for a range of sizes where the model needs that; (src, None)
    for a fixed-size export."""
    if not (config.shapes or config.dynamic_hw):
        return src, None
    from edgekit.shapes import envelope_for, fmt, parse, size_rule

    flag = "--shapes" if config.shapes else "--dynamic-hw"
    if not backend.envelopes:
        raise UsageError(f"{flag}: --target {config.target.value} takes one input size here; shape envelopes are "
                         f"built for onnx, openvino, trt, coreml and executorch (docs/shapes.md)")
    opt = parse(config.shapes)[1] if config.shapes else tuple(src.spec.input_shape)
    if config.shapes and config.input_shape and tuple(config.input_shape) != opt:
        raise UsageError(f"--input-shape {fmt(config.input_shape)} differs from --shapes' OPT {fmt(opt)}; the OPT "
                         f"shape is the export size: drop --input-shape")
    rule = size_rule(src)
    envelope = envelope_for(config.shapes, config.dynamic_hw, config.dynamic_batch, opt, rule, config.source)
    backend.envelope = envelope
    if config.target is Target.TRT:  # its optimization profile is the envelope
        if backend.options.shapes and backend.options.shapes != envelope.text():
            raise UsageError(f"{flag} and the TensorRT profile in target_options differ; give the envelope once")
        backend.options = replace(backend.options, shapes=envelope.text())
    if envelope.opt != tuple(src.spec.input_shape) or (rule.rebuild and envelope.dynamic_hw):
        options = replace(config.source_options, dynamic_size=rule.rebuild and envelope.dynamic_hw)
        src = load_source(config.source, config.checkpoint, envelope.opt, options)
    return src, envelope


def _corner_parity(config: ExportConfig, backend, staging: Path, built, reference, spec, tolerance: Tolerance,
                   envelope, at_opt: ParityReport, rep: Reporter, stand_in, parity_set
                   ) -> tuple[list[dict], list[str]]:
    """The gate at each corner of the envelope other than OPT (which the main gate measured): the main gate's
    images (``parity_set``; for int8, those held out from calibration) preprocessed to that size, the artifact
    against PyTorch at it. (records, failures)."""
    from edgekit.engines import EngineError
    from edgekit.errors import EdgekitFailure
    from edgekit.shapes import at_size, fmt

    records, failures = [], []
    for label, shape in envelope.corners():
        if shape == envelope.opt and (not envelope.dynamic_batch or shape[0] == 1):  # what the main gate ran
            records.append({"label": label, "shape": list(shape), **_corner_figures(at_opt)})
            continue
        inputs = at_size(parity_set, spec.preprocess, shape[2:])
        if inputs is None:  # tensors read from files: read again (they keep their own size)
            pre = replace(spec.preprocess, size=tuple(shape[2:]))
            int8 = config.precision is Precision.INT8
            inputs = load_image_sets(config.calib, pre, config.calib_size, int8=int8).parity.inputs
        with rep.step(f"parity at the envelope's {label} {fmt(shape)}", total=len(inputs)), stage("parity"):
            try:
                # a stand-in is closed by the run that used it: each corner opens its own
                runner = backend.open_stand_in(staging, built, config.threads)[0] if stand_in else None
                report = measure_parity(backend, staging, built, reference, inputs, spec, tolerance, shape[0],
                                        config.threads, rep.advance, runner=runner)
            except (EngineError, EdgekitFailure) as e:
                records.append({"label": label, "shape": list(shape), "passed": False, "error": str(e)})
                failures.append(f"at {label} {fmt(shape)} the artifact does not run: {e}")
                continue
        records.append({"label": label, "shape": list(shape), **_corner_figures(report)})
        if not report.passed:
            failures.append(f"at {label} {fmt(shape)}: {'; '.join(report.failures)} ({report.summary()})")
    return records, failures


def _corner_figures(report: ParityReport) -> dict:
    d = report.to_dict()
    return {k: d[k] for k in ("images", "cosine_min", "max_abs_rel", "passed", "failures") if k in d}


def _locate(config: ExportConfig, fp32_proto, proto, built, staging: Path, inputs, rep: Reporter, model):
    """The divergence locator on a failing gate, where the artifact's runtime runs here (ONNX Runtime, OpenVINO):
    a reduced-precision graph against its fp32 graph, an fp32 graph against the PyTorch modules (``model``, the
    deploy-mode model the gate compared with); None elsewhere (TensorRT, CoreML)."""
    runtime = (built.runtime or {}).get("name")
    if fp32_proto is None or runtime not in ("onnxruntime", "openvino"):
        return None
    from edgekit.debug.locate import locate, locate_against_torch

    with rep.step("locate the divergence layer by layer"), stage("parity"):
        if config.precision is Precision.FP32:
            return locate_against_torch(model, fp32_proto, runtime, dict(built.options), inputs)
        if (built.options or {}).get("format") == "ort":
            return None  # a --mobile bundle holds the .ort file only: no ONNX graph to tap
        candidate = onnx.load(str(staging / built.files[0])) if runtime == "onnxruntime" else proto
        return locate(fp32_proto, candidate, config.precision, runtime, dict(built.options), inputs, gate_failed=True)


def _fusion_may_cause(located, built) -> bool:
    """Whether a failing gate is worth running again at lower ONNX Runtime optimization levels: an .onnx bundle
    on ONNX Runtime that fuses, and a divergence no reduced-precision signature explains."""
    options = built.options or {}
    return ((built.runtime or {}).get("name") == "onnxruntime" and options.get("format") != "ort"
            and options.get("graph_optimization_level", "ORT_DISABLE_ALL") != "ORT_DISABLE_ALL"
            and (located.diagnosis or {}).get("kind", "rounding") in ("rounding", "export_differs"))


def _write_report(path: Path, config: ExportConfig, report: ParityReport, located, fixes: list[dict]) -> None:
    """``<out>.parity-report.json`` and ``.html`` (with the plot of error by module): the gate's figures and the
    layer-by-layer ones, beside the bundle that was not written (replaced on the next failing export)."""
    import json

    from edgekit.debug.report import write_html

    data = {"source": config.source, "target": config.target.value, "precision": config.precision.value,
            "gate": report.to_dict(), "layerwise": located.to_dict(), "auto_fix": fixes}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    tmp.replace(path)
    write_html(path.with_suffix(".html"), data)


def measure_parity(backend, bundle_dir: Path, built, reference, inputs: list[np.ndarray], spec, tolerance: Tolerance,
                   batch: int, threads: int | None, advance=None, runner=None) -> ParityReport:
    """Open the built artifact (or use ``runner``, a stand-in) and compare it with the PyTorch reference."""
    runner = runner or backend.open(bundle_dir, built.files, built.options, threads)
    try:
        names = spec.output_names

        def candidate(x: np.ndarray) -> list[np.ndarray]:
            return runner.infer_named({runner.input_names[0]: x}, names)[:len(names)]

        return run_parity(reference, candidate, inputs, spec.task, tolerance, batch, advance, names)
    finally:
        runner.close()


def _pt2e_job(config: ExportConfig, backend, spec, calib, rep: Reporter, quant):
    """What a target quantizing through PT2E needs for int8 (None for the others, which quantize the ONNX)."""
    if not backend.pt2e:
        return None
    from edgekit.quant import QuantOptions
    from edgekit.quant.int8 import budget_for
    from edgekit.quant.pt2e import Pt2eJob

    options = quant or QuantOptions()
    tol = config.tolerance or Tolerance.default(Precision.INT8).overridden(spec.tolerance, Precision.INT8)
    budget = budget_for(options, tol.agreement if tol.agreement is not None else 0.0, tol.cosine)
    return Pt2eJob(calib, options, budget, spec.task, 1 if config.dynamic_batch else spec.input_shape[0], rep)


def _onnx_for_target(config: ExportConfig, backend, model, spec, calib, rewrites: RewriteReport, rep: Reporter,
                     quant=None, envelope=None):
    """Export, rewrite, attach plugin functions, quantize (int8) -> (ExportResult, ModelProto, quant info, the
    fp32 ModelProto the int8 one was made from)."""
    with rep.step(f"export ONNX (opset {config.opset})"), stage("export"):
        exported = export_onnx(model, spec.input_shape, config.opset,
                               config.dynamic_batch or (envelope is not None and envelope.dynamic_batch),
                               output_names=spec.output_names,
                               dynamic_hw=envelope.dynamic_hw if envelope is not None else False)
    for note in exported.notes:
        rep.note(note)
    proto = exported.model
    if config.rewrite:
        with rep.step(f"rewrite for {config.target.value}"), stage("rewrite"):
            proto = apply_rewrites(proto, config.target, rewrites, config.precision, config.leave_out)
    with stage("export"):
        proto = attach_plugin_functions(proto)

    fp32_proto = proto
    if config.precision is Precision.INT8:
        with stage("quantize"):  # reports its own steps
            proto, quant_info = quantize_onnx_for_target(proto, backend.int8, config, spec, calib, rep, quant)
    else:
        quant_info = None
    return exported, proto, quant_info, fp32_proto


def _io_spec(proto: onnx.ModelProto, values) -> list[dict]:
    out = []
    for v in values:
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
        out.append({"name": v.name, "shape": dims, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                    "layout": "NCHW" if len(dims) == 4 else ""})
    return out


def _manifest(config: ExportConfig, spec, exported, rewrites: RewriteReport, built, parity: dict,
              proto: onnx.ModelProto, staging: Path, quant_info: dict | None, model, envelope=None) -> dict:
    from edgekit.flops import count_flops

    plugins = uses_plugins(proto) if proto is not None else []
    plugin_hashes = {}
    if plugins:
        from edgekit.plugins import plugin_hashes as _hashes

        plugin_hashes = {k: v for k, v in _hashes().items() if k in plugins}
    # a target built from the torch model (needs_torch) describes its own I/O and conversion
    inputs = _io_spec(proto, proto.graph.input) if proto is not None else built.inputs
    outputs = _io_spec(proto, proto.graph.output) if proto is not None else built.outputs
    described = {o.name: o for o in spec.outputs}
    for entry in outputs:  # what each output is: logits, or a feature map (with its stride), tokens, an embedding
        out = described.get(entry["name"])
        entry.update(out.to_dict() if out else {"kind": "labels" if entry["dtype"].startswith("int") else "logits"})
        if out and len(entry["shape"]) == len(out.shape):  # a dim shape inference lost (a rewrite's reshape) is
            # the one PyTorch gave; only the batch stays symbolic, and only under --dynamic-batch
            dyn_batch = config.dynamic_batch or (envelope is not None and envelope.dynamic_batch)
            dyn_hw = envelope is not None and envelope.dynamic_hw and len(out.shape) == 4
            entry["shape"] = [d if isinstance(d, int) or (i == 0 and dyn_batch) or (i >= 2 and dyn_hw)
                              else out.shape[i] for i, d in enumerate(entry["shape"])]
    return {
        "edgekit_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "target": config.target.value,
        "precision": config.precision.value,
        "model": {**spec.to_dict(), "flops": count_flops(model, spec.input_shape),
                  "checkpoint": ({"path": str(config.checkpoint), "sha256": sha256_file(Path(config.checkpoint))}
                                 if config.checkpoint else None),
                  "source_options": config.source_options.to_dict()},
        "runtime": built.runtime,
        "runtime_options": built.options,
        "build": {"host": host_info(), "notes": built.notes},
        "inputs": inputs,
        "outputs": outputs,
        "preprocess": spec.preprocess_dict(),
        "export": {"exporter": exported.exporter, "opset": exported.opset, "ir_version": proto.ir_version,
                   "simplifier": exported.simplifier, "seconds": round(exported.seconds, 2), "notes": exported.notes,
                   "dynamic_batch": config.dynamic_batch,
                   "requested_input_shape": list(config.input_shape) if config.input_shape else None}
                  if exported is not None else built.export,
        "export_config": export_config_record(config),  # read back by `edgekit quantize` to export it again
        "rewrites": rewrites.to_dict(),
        "plugins": [{"name": p, "domain": "edgekit", "version": 1, "sha256": plugin_hashes.get(p, "")} for p in plugins],
        "quantization": quant_info,
        "parity": parity,
        **({"shapes": envelope.to_dict()} if envelope is not None else {}),
        "files": file_entries(staging, built.files),
    }
