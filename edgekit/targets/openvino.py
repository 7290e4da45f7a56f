"""OpenVINO target: IR (xml + bin) compiled for a device with an explicit inference precision.

OpenVINO's CPU plugin runs in bf16 by default on CPUs with AVX512-BF16, silently changing results,
so every precision mode sets INFERENCE_PRECISION_HINT explicitly. OpenVINO does not inline ONNX
model-local functions in a custom domain: plugin ops are inlined before conversion.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from edgekit.config import Precision, Target
from edgekit.errors import EdgekitFailure
from edgekit.targets.base import BuildResult, Runner, TargetBackend, check_ops
from edgekit.targets.openvino_options import OpenVinoOptions

XML_FILE = "model.xml"
BIN_FILE = "model.bin"

# precision mode -> (compress weights to fp16, inference precision hint)
_HINTS = {Precision.FP32: (False, "f32"), Precision.FP16: (True, "f16"), Precision.BF16: (False, "bf16"),
          Precision.INT8: (False, "f32")}


def device_supports(device: str, hint: str) -> bool:
    import openvino as ov

    caps = ov.Core().get_property(device, "OPTIMIZATION_CAPABILITIES")
    return {"f32": "FP32", "f16": "FP16", "bf16": "BF16"}[hint] in caps


class OpenVinoRunner(Runner):
    def __init__(self, xml: Path, device: str = "CPU", hint: str = "f32", threads: int | None = None,
                 perf_counters: bool = False):
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if perf_counters:
            config["PERF_COUNT"] = True
        try:
            self.compiled = core.compile_model(core.read_model(str(xml)), device, config)
        except RuntimeError as e:
            raise EdgekitFailure(f"OpenVINO cannot compile {xml.name} for {device}: {_first_line(e)}") from None
        self.request = self.compiled.create_infer_request()
        self.input_names = [p.get_any_name() for p in self.compiled.inputs]
        self.output_names = [p.get_any_name() for p in self.compiled.outputs]
        self.hint = hint
        self.xml, self.device, self.threads = xml, device, threads

    def infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.request.infer(feeds)
        return [np.array(self.request.get_output_tensor(i).data) for i in range(len(self.output_names))]

    def profile(self, feeds, iters: int = 10, warmup: int = 2) -> dict:
        from edgekit.profiling.device_runner import ov_layers

        profiled = OpenVinoRunner(self.xml, self.device, self.hint, self.threads, perf_counters=True)
        return ov_layers(profiled.compiled, profiled.request, feeds if isinstance(feeds, list) else [feeds], iters, warmup)


class OpenVinoBackend(TargetBackend):
    target = Target.OPENVINO
    precisions = (Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8)
    sdk = "openvino"
    Options = OpenVinoOptions

    @property
    def int8(self):
        """Scored in OpenVINO itself; NNCF's recipes and edgekit's."""
        from edgekit.quant.plan import Int8Plan, Scoring
        from edgekit.quant.recipes import openvino_recipes

        return Int8Plan(Scoring.OPENVINO, "OpenVINO", openvino_recipes)

    def runtime_version(self) -> str:
        import openvino as ov

        return ov.get_version().split("-")[0]

    def build(self, model: onnx.ModelProto, spec, out_dir: Path, precision: Precision) -> BuildResult:
        import openvino as ov

        from edgekit.plugins_bridge import inline_plugin_functions

        device = self.options.device
        compress, hint = _HINTS[precision]
        notes = []
        if hint != "f32" and not device_supports(device, hint):
            notes.append(f"{device} has no {hint} compute; it runs {hint} weights in f32 here, {hint} on devices that have it")
            run_hint = "f32"
        else:
            run_hint = hint
        model = inline_plugin_functions(model)
        check_ops(model, {"", "ai.onnx", "ai.onnx.ml"}, "OpenVINO")
        with tempfile.TemporaryDirectory() as tmp:  # convert_model reads ONNX from a file
            onnx.save_model(model, f"{tmp}/model.onnx")
            try:
                ov_model = ov.convert_model(f"{tmp}/model.onnx")
            except Exception as e:  # OpConversionFailure and friends
                raise EdgekitFailure(f"OpenVINO cannot convert the model: {_first_line(e)}") from None
        ov.save_model(ov_model, str(out_dir / XML_FILE), compress_to_fp16=compress)
        runner = OpenVinoRunner(out_dir / XML_FILE, device, run_hint, threads=1)  # fails the build if it cannot compile
        del runner
        return BuildResult([XML_FILE, BIN_FILE], {"name": "openvino", "version": self.runtime_version()}, precision,
                           {"device": device, "inference_precision": hint, "weights": "f16" if compress else "f32"}, notes)

    def open(self, bundle_dir: Path, files: list[str], options: dict, threads: int | None = None) -> Runner:
        device = options.get("device", "CPU")
        hint = options.get("inference_precision", "f32")
        if hint != "f32" and not device_supports(device, hint):
            hint = "f32"
        return OpenVinoRunner(bundle_dir / files[0], device, hint, threads)


def _first_line(e: Exception) -> str:
    s = str(e).strip()
    return s.splitlines()[0][:400] if s else e.__class__.__name__
