"""OpenVINO target: IR (xml + bin) compiled for a device with an explicit inference precision.

OpenVINO's CPU plugin runs in bf16 by default on CPUs with AVX512-BF16, silently changing results,
so every precision mode sets INFERENCE_PRECISION_HINT explicitly. OpenVINO does not inline ONNX
model-local functions in a custom domain: plugin ops are inlined before conversion.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import onnx

from edgekit.config import Precision, Target
from edgekit.engines import Engine
from edgekit.engines.base import first_line
from edgekit.engines.openvino import device_supports
from edgekit.errors import EdgekitFailure
from edgekit.targets.base import BuildResult, TargetBackend, check_ops, open_engine
from edgekit.targets.openvino.options import OpenVinoOptions

XML_FILE = "model.xml"
BIN_FILE = "model.bin"

# precision mode -> (compress weights to fp16, inference precision hint)
_HINTS = {Precision.FP32: (False, "f32"), Precision.FP16: (True, "f16"), Precision.BF16: (False, "bf16"),
          Precision.INT8: (False, "f32")}


class OpenVinoBackend(TargetBackend):
    target = Target.OPENVINO
    envelopes = True
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

    def build(self, model: onnx.ModelProto, spec, out_dir: Path, precision: Precision,
              keep_fp: tuple[str, ...] = ()) -> BuildResult:
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
                raise EdgekitFailure(f"OpenVINO cannot convert the model: {first_line(e)}") from None
        ov.save_model(ov_model, str(out_dir / XML_FILE), compress_to_fp16=compress)
        # fails the build if it cannot compile
        open_engine("openvino", out_dir / XML_FILE, {"device": device, "inference_precision": run_hint}, threads=1).close()
        return BuildResult([XML_FILE, BIN_FILE], {"name": "openvino", "version": self.runtime_version()}, precision,
                           {"device": device, "inference_precision": hint, "weights": "f16" if compress else "f32"}, notes)

    def open(self, bundle_dir: Path, files: list[str], options: dict, threads: int | None = None) -> Engine:
        return open_engine("openvino", bundle_dir / files[0], options, threads)


Backend = OpenVinoBackend
