"""CoreML target: an ML Program (``.mlpackage``) converted from the prepared torch model by coremltools.

Converted here on any OS (:mod:`.convert`), inspected here (:mod:`.program`: op histogram,
max rank, compute precision; the build fails if an op fell back or a rank exceeds 5). Predictions need
CoreML itself, i.e. macOS: elsewhere the parity gate records that parity was not measured, and why.

Precisions: fp32 and fp16 are the program's compute precision; int8 is int8 weights (fp16 compute)
from coremltools' optimization API, through ``edgekit.quant.coreml_quantize``.
"""
from __future__ import annotations

import json
import logging
import platform
from pathlib import Path

import numpy as np

from edgekit.config import Precision, Target, Task
from edgekit.engines import Engine
from edgekit.errors import EdgekitFailure, UsageError
from edgekit.targets.base import BuildResult, TargetBackend, open_engine
from edgekit.targets.coreml.options import CoreMlOptions, CoreMlOutput

PACKAGE = "model.mlpackage"
REPORT_FILE = "coreml.json"


def coremltools():
    """Import coremltools quietly: on Linux it warns at import that its CoreML runtime proxy is absent, and the
    torchao it imports (installed with the executorch extra) logs the CUDA kernels it cannot load."""
    for name in ("coremltools", "torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import coremltools as ct

    return ct


class CoreMlBackend(TargetBackend):
    target = Target.COREML
    envelopes = True
    precisions = (Precision.FP32, Precision.FP16, Precision.INT8)
    sdk = "coremltools"
    needs_torch = True  # converted from the prepared torch model, not from ONNX
    Options = CoreMlOptions

    @property
    def int8(self):
        """int8 CoreML is int8 weights from coremltools (build_torch); this plan ranks blocks for
        `edgekit quantize --sensitivity` with edgekit's QDQ in ONNX Runtime."""
        from edgekit.quant.plan import Int8Plan, Scoring
        from edgekit.quant.recipes import generic_recipes

        return Int8Plan(Scoring.ONNXRUNTIME, "ONNX Runtime", generic_recipes)

    def missing(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec("coremltools") is None:
            return "target coreml needs coremltools: pip install 'edgekit[coreml]'"
        if tuple(int(p) for p in np.__version__.split(".")[:2]) >= (2, 4):
            return (f"coremltools 9.0 fails with numpy {np.__version__} (a _cast TypeError in conversion): "
                    f"pip install 'numpy<2.4'")
        return None

    def runtime_version(self) -> str:
        return coremltools().__version__

    def check_model(self, spec, dynamic_batch: bool) -> None:
        if spec.input_shape[0] != 1 or dynamic_batch:  # (an envelope's batch range is dynamic_batch here)
            raise UsageError("CoreML image inputs take one image at a time: export with batch 1 and without "
                             "--dynamic-batch")
        if self.options.output is CoreMlOutput.LABELS and spec.task is not Task.SEGMENTATION:
            raise UsageError(f"--coreml-output labels is for segmentation models; this one is a {spec.task.value} "
                             f"model")

    def build_torch(self, model, spec, out_dir: Path, precision: Precision, int8=None) -> BuildResult:
        """Convert ``model`` (deploy-mode, swapped for CoreML) for ``spec``'s input into ``out_dir``."""
        import copy

        from edgekit.targets.coreml.convert import IMAGE_INPUT, Deployed, convert
        from edgekit.targets.coreml.program import inspect_spec

        ct = coremltools()
        pre = spec.preprocess
        labels = self.options.output is CoreMlOutput.LABELS
        features = spec.task is Task.FEATURES
        output = "labels" if labels else "logits"
        names = spec.output_names if features else (output,)
        compute = "fp32" if precision is Precision.FP32 else "fp16"
        wrapped = Deployed(copy.deepcopy(model), pre.mean, pre.std, labels)
        converted = convert(wrapped, tuple(spec.input_shape), names, compute, self.options.deployment_target,
                            pre.channel_order, self.envelope)
        mlmodel, notes = converted.mlmodel, list(converted.notes)
        if converted.flexible:
            notes.append(f"CoreML input: {'a range of sizes (RangeDim)' if converted.flexible == 'range' else 'the envelope corners as EnumeratedShapes'}")
        quantization = None
        if precision is Precision.INT8:
            mlmodel, quantization = _int8_weights(mlmodel)
            notes.append("int8 weights, fp16 compute")
        report = inspect_spec(mlmodel.get_spec(), compute)
        report.check()
        mlmodel.short_description = f"{spec.name} ({spec.task.value}), exported by edgekit"
        # metadata values are strings: a label set's name as it is, one label per class as a JSON list
        label_names = spec.labels if isinstance(spec.labels, str) else json.dumps(list(spec.labels))
        mlmodel.user_defined_metadata.update({"edgekit.preprocess": json.dumps(pre.to_dict()),
                                              "edgekit.output": ",".join(names), "edgekit.labels": label_names})
        mlmodel.save(str(out_dir / PACKAGE))
        files = sorted((p.relative_to(out_dir).as_posix() for p in (out_dir / PACKAGE).rglob("*") if p.is_file()),
                       key=lambda f: (not f.endswith("Manifest.json"), f))  # the package's own manifest first
        (out_dir / REPORT_FILE).write_text(json.dumps({"program": report.to_dict(), "frontend": converted.frontend,
                                                       "quantization": quantization}, indent=2) + "\n")
        n, _, h, w = spec.input_shape
        s = spec.output_stride
        if converted.flexible:  # a range of sizes: height and width are dynamic in and out
            h, w = "height", "width"
        out_h, out_w = (f"output_{h}", f"output_{w}") if converted.flexible else (h // s, w // s)
        out_shape = ([n, out_h, out_w] if labels else [n, spec.num_classes, out_h, out_w]
                     if spec.task is Task.SEGMENTATION else [n, spec.num_classes])
        runtime = {"name": "coremltools", "version": ct.__version__, "format": "mlprogram",
                   "deployment_target": self.options.deployment_target, "compute_precision": compute,
                   **({"flexible_shape": converted.flexible} if converted.flexible else {})}
        run_options = {"compute_units": self.options.compute_units, "input": IMAGE_INPUT, "output": names[0],
                       "mean": list(pre.mean), "std": list(pre.std)}
        if features:
            run_options["outputs"] = list(names)
            described = [{"name": o.name, "shape": list(o.shape), "dtype": "float32", "layout": o.layout}
                         for o in spec.outputs]
        return BuildResult(
            [*files, REPORT_FILE], runtime, precision, run_options, notes,
            inputs=[{"name": IMAGE_INPUT, "shape": [n, 3, h, w], "dtype": "uint8", "layout": "NCHW",
                     "kind": f"image ({pre.channel_order}, 8-bit; scaled by 1/255 and normalised inside the model)"}],
            outputs=described if features else [
                {"name": output, "shape": out_shape, "dtype": "int32" if labels else "float32",
                 "layout": "NHW" if labels else ("NCHW" if len(out_shape) == 4 else "")}],
            export={"converter": f"coremltools {ct.__version__}", "frontend": converted.frontend,
                    "format": "mlprogram", "deployment_target": self.options.deployment_target,
                    "compute_precision": compute, "notes": converted.notes,
                    "program": {k: v for k, v in report.to_dict().items() if k != "ops"}})

    def cannot_run_here(self, built: BuildResult) -> str | None:
        if platform.system() != "Darwin":
            return f"CoreML predicts only on macOS and iOS (this is {platform.system()})"
        if built.options.get("output") == "labels":
            return "the bundle outputs label maps; parity is measured on logits (--coreml-output logits)"
        return None

    def open(self, bundle_dir: Path, files: list[str], options: dict, threads: int | None = None) -> Engine:
        if platform.system() != "Darwin":
            raise UsageError(f"CoreML bundles run on macOS and iOS only; this is {platform.system()}")
        return open_engine("coreml", bundle_dir / files[0].split("/")[0], options, threads)

    def preflight(self, manifest) -> list[str]:
        if platform.system() != "Darwin":
            return [f"CoreML bundles run on macOS and iOS only; this is {platform.system()}: open the .mlpackage "
                    f"in Xcode or load the bundle on a Mac"]
        return super().preflight(manifest)


def _int8_weights(mlmodel):
    """int8 weights through edgekit's quantization recipes (coremltools' optimization API)."""
    try:
        from edgekit.quant import coreml_quantize
    except ImportError:
        raise EdgekitFailure("int8 CoreML weights need edgekit.quant.coreml_quantize, which this install lacks; "
                             "export fp16 instead") from None
    from edgekit.targets.coreml.convert import quiet

    with quiet():  # coremltools' compression passes print progress bars
        result = coreml_quantize(mlmodel)
    if isinstance(result, tuple):
        return result
    return result, {"method": "coreml_quantize"}


Backend = CoreMlBackend
