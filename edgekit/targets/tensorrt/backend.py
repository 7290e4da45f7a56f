"""TensorRT target: a strongly typed engine built from the TensorRT-flavoured ONNX, or (``--onnx-only``) the kit
to build it on the device.

What runs where (TensorRT cannot be installed on machines without NVIDIA's package index, and needs a GPU):

- everywhere: the TensorRT-flavoured ONNX (:mod:`.flavour`), its structural checks (plugin nodes as
  the parser expects them, Q/DQ placement), profiles (:mod:`.profiles`), the trtexec command
  and build kit (:mod:`.command`), the manifest's compatibility rules (:mod:`.compat`)
  and the layer/attention mapping (:mod:`.layers`); parity of the flavoured ONNX through ONNX
  Runtime (plugin nodes run as their function bodies), recorded as exactly that;
- with TensorRT and a GPU: the build (:mod:`.engine`) and the engine that runs it (:mod:`edgekit.engines.tensorrt`).

Without them ``edgekit export --target trt`` fails at once with one line saying what is missing.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import onnx

from edgekit.config import Precision, Target
from edgekit.engines import Engine
from edgekit.errors import EdgekitFailure, UsageError
from edgekit.targets.base import BuildResult, TargetBackend, open_engine
from edgekit.targets.tensorrt.command import (ENGINE_FILE, ONNX_FILE, command_line, trtexec_build_args,
                                              trtexec_profile_args, write_onnx_only)
from edgekit.targets.tensorrt.device import MIN_TENSORRT, MIN_TENSORRT_AOT_PLUGINS, missing_message, probe
from edgekit.targets.tensorrt.engine import runtime_options
from edgekit.targets.tensorrt.options import TrtOptions
from edgekit.targets.tensorrt.profiles import ShapeProfile, default_profiles, parse_shapes, validate_profiles

REPORT_FILE = "tensorrt.json"


def onnx_input_dims(model: onnx.ModelProto) -> dict[str, list]:
    """Graph inputs (initializers excluded) -> dims: ints where fixed, names where dynamic."""
    inits = {i.name for i in model.graph.initializer}
    out = {}
    for v in model.graph.input:
        if v.name not in inits:
            out[v.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                           for d in v.type.tensor_type.shape.dim]
    return out


class TensorRtBackend(TargetBackend):
    target = Target.TRT
    envelopes = True
    precisions = (Precision.FP32, Precision.FP16, Precision.INT8)
    sdk = "tensorrt"
    Options = TrtOptions

    def runtime_version(self) -> str:
        return probe().tensorrt or ""

    @property
    def int8(self):
        """Q/DQ placed for TensorRT's fusions, scored in ONNX Runtime (no TensorRT runs here)."""
        from edgekit.quant.plan import Int8Plan, Scoring
        from edgekit.quant.recipes import tensorrt_recipes

        return Int8Plan(Scoring.ONNXRUNTIME, "ONNX Runtime (TensorRT's QDQ graph)", tensorrt_recipes)

    def missing(self) -> str | None:
        return None if self.options.onnx_only else missing_message(probe())

    def check_model(self, spec, dynamic_batch: bool) -> None:
        """Fail fast, before the export: --shapes against what the export will allow and the model's divisor."""
        dims = list(spec.input_shape)
        if dynamic_batch:
            dims[0] = "batch"
        if self.envelope is not None and self.envelope.dynamic_hw:
            dims[2:] = ["height", "width"]
        from edgekit.stages.onnx_export import INPUT_NAME

        self._profiles({INPUT_NAME: dims}, spec)

    def _profiles(self, inputs: dict[str, list], spec) -> tuple[ShapeProfile, ...]:
        """--shapes checked against the inputs and the model's size divisor, or the profile of its example shape."""
        if self.options.shapes:
            profiles = parse_shapes(self.options.shapes, list(inputs))
            validate_profiles(profiles, inputs, spec.size_divisor)
            return profiles
        return default_profiles(inputs, tuple(spec.input_shape))

    def build(self, model: onnx.ModelProto, spec, out_dir: Path, precision: Precision,
              keep_fp: tuple[str, ...] = ()) -> BuildResult:
        from edgekit.plugins_bridge import uses_plugins
        from edgekit.targets.tensorrt.flavour import check_structure, trt_flavour

        flavoured, notes = trt_flavour(model, precision)
        report = check_structure(flavoured, precision)
        report.raise_if_problems()
        notes += report.warnings
        inputs = onnx_input_dims(flavoured)
        profiles = self._profiles(inputs, spec)
        if not self.options.shapes and any(not isinstance(d, int) for dims in inputs.values() for d in dims):
            notes.append(f"dynamic dimensions without --shapes: the profile is fixed at "
                         f"{', '.join(f'{p.name} {p.opt}' for p in profiles)}; pass --shapes min:opt:max for a range")
        opts = replace(self.options, profiles=profiles)
        plugin_ops = uses_plugins(flavoured)
        if opts.onnx_only:
            files = write_onnx_only(out_dir, flavoured.SerializeToString(), opts, profiles, plugin_ops,
                                    len(report.plugins))
            runtime = {"name": "tensorrt", "version": "none (--onnx-only: no engine built)", "artifact": "onnx",
                       "requires": f">={MIN_TENSORRT} (>={MIN_TENSORRT_AOT_PLUGINS} for the plugins ahead of time; "
                                   f"older builds use their ONNX function bodies)"}
            run_options = {"artifact": "onnx"}
            notes.append("no engine built (--onnx-only): build it on the device with build/build_engine.py or "
                         "trtexec.sh; parity below is of the TensorRT-flavoured ONNX in ONNX Runtime, not of an engine")
        else:
            files, runtime = self._build_engine(flavoured, out_dir, opts, len(report.plugins))
            run_options = runtime_options(opts.to_dict())
            if runtime["plugins"]["mode"] == "function-bodies":
                notes.append(runtime["plugins"]["reason"])
        (out_dir / REPORT_FILE).write_text(json.dumps({
            "structure": report.to_dict(), "build": opts.to_dict(),
            "trtexec": {"build": command_line(trtexec_build_args(opts, profiles)),
                        "profile": command_line(trtexec_profile_args(profiles, opts))}}, indent=2) + "\n")
        return BuildResult([*files, REPORT_FILE], runtime, precision, run_options, notes)

    def _build_engine(self, model: onnx.ModelProto, out_dir: Path, opts: TrtOptions,
                      plugin_nodes: int) -> tuple[list[str], dict]:
        from edgekit.targets.tensorrt.engine import BuildError, build_engine, runtime_facts

        env = probe()
        if not env.can_build:
            raise UsageError(missing_message(env))
        onnx.save_model(model, str(out_dir / ONNX_FILE))
        try:
            built = build_engine(out_dir / ONNX_FILE, out_dir / ENGINE_FILE, opts.to_dict(), plugin_nodes)
        except BuildError as e:
            raise EdgekitFailure(str(e)) from None
        return [ENGINE_FILE, "layers.json", ONNX_FILE], runtime_facts(built, opts.to_dict())

    def cannot_run_here(self, built: BuildResult) -> str | None:
        """Why the built artifact cannot run on this machine (parity is then not measured on it)."""
        if built.runtime.get("artifact") == "onnx":
            return "no TensorRT engine was built (--onnx-only); the engine is built and run on the device"
        return None

    def open_stand_in(self, bundle_dir: Path, built: BuildResult, threads: int | None = None):
        """(engine, what it is) for parity when the engine cannot run here: the flavoured ONNX in ONNX Runtime."""
        import onnxruntime

        what = (f"the TensorRT-flavoured ONNX in ONNX Runtime {onnxruntime.__version__} (edgekit nodes run as their "
                f"ONNX function bodies); not a TensorRT engine")
        return open_engine("onnxruntime", bundle_dir / built.files[0], {}, threads), what

    def open(self, bundle_dir: Path, files: list[str], options: dict, threads: int | None = None) -> Engine:
        if options.get("artifact") == "onnx":
            raise UsageError("this TensorRT bundle holds no engine (exported with --onnx-only): build it on the "
                             "device with build/build_engine.py or trtexec.sh")
        return open_engine("tensorrt", bundle_dir / files[0], options, threads)

    def preflight(self, manifest) -> list[str]:
        from edgekit.manifest import as_manifest
        from edgekit.targets.tensorrt.compat import engine_mismatches

        return engine_mismatches(as_manifest(manifest).runtime.to_dict(), probe())


Backend = TensorRtBackend
