"""ExecuTorch target: the prepared torch model, captured by ``torch.export`` and lowered to one ExecuTorch backend
(:mod:`.lower`), written as ``model.pte`` with ``executorch.json`` (the delegation report and the program map the
profiler reads).

Precisions: fp32; fp16 (the program computes in half precision, its input and outputs stay float32, so the
bundle's I/O is the same at every precision); int8 through PT2E with the backend's quantizer (:mod:`edgekit.quant.pt2e`:
edgekit's islands and budget applied to its annotation). XNNPACK runs here, in the wheel's own runtime, so the
parity gate measures the program itself; a program lowered for another delegate records why it was not measured.
"""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

from edgekit.config import Precision, Target
from edgekit.engines import Engine
from edgekit.errors import UsageError
from edgekit.targets.base import BuildResult, open_engine
from edgekit.targets.executorch.options import ExecuTorchOptions
from edgekit.targets.torch_program import Pt2eBackend

PROGRAM = "model.pte"
REPORT_FILE = "executorch.json"
DEVICES = {"coreml": "Apple devices (CoreML: iOS 16 / macOS 13 and later)",
           "qnn": "Qualcomm Snapdragon devices (QNN HTP)", "vulkan": "GPUs with Vulkan (Android)"}


def xnnpack_quantizer():
    """XNNPACK's PT2E quantizer: per-channel symmetric int8 weights, per-tensor int8 activations."""
    from edgekit.targets.torch_program import quiet

    with quiet():  # torchao, imported with it, logs the CUDA kernels it cannot load
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                             get_symmetric_quantization_config)

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))


def executorch_version() -> str:
    from importlib.metadata import version

    return version("executorch")


class ExecuTorchBackend(Pt2eBackend):
    target = Target.EXECUTORCH
    envelopes = True  # height and width only (a batch range is refused): torch.export dynamic shapes
    sdk = "executorch"
    Options = ExecuTorchOptions

    def missing(self) -> str | None:
        if importlib.util.find_spec("executorch") is None:
            return "target executorch needs ExecuTorch: pip install 'edgekit[executorch]'"
        return None

    def runtime_version(self) -> str:
        return executorch_version()

    def check_model(self, spec, dynamic_batch: bool) -> None:
        if dynamic_batch:
            raise UsageError("ExecuTorch bundles take a fixed batch: drop --dynamic-batch and export with "
                             "--input-shape for the batch the app runs")
        if self.envelope is not None and self.envelope.dynamic_hw and self.envelope.window:
            # measured: torch.export had not finished capturing Swin's in-graph window arithmetic after 10 min
            raise UsageError(f"--shapes: an ExecuTorch program for a range of sizes of a windowed-attention model "
                             f"({spec.name}) is not built: torch.export does not finish on its in-graph window "
                             f"arithmetic; export one size per program, or use --target onnx / openvino")
        if self.options.delegate != "xnnpack":
            from edgekit.targets.executorch.lower import partitioner

            partitioner(self.options.delegate)  # a delegate that cannot be lowered here fails before the slow steps

    def build_torch(self, model, spec, out_dir: Path, precision: Precision, int8=None) -> BuildResult:
        from edgekit.targets.executorch.lower import BACKEND_IDS, lower, two_pass_layer_norm
        from edgekit.targets.torch_program import (Flat, Half, capture, contiguous_constants, describe_io,
                                                   envelope_dims, example_input)

        delegate = self.options.delegate
        flat = Flat(copy.deepcopy(model)).eval()
        example = example_input(spec)
        dynamic = envelope_dims(self.envelope)
        if dynamic and precision is Precision.INT8:
            raise UsageError("--shapes: int8 ExecuTorch programs take one size here (PT2E quantizes a graph "
                             "captured at one size); export fp32 or fp16 for a range, or int8 per size")
        inputs, outputs = describe_io(flat, example, spec, dynamic_hw=dynamic is not None)
        quantization, notes = None, []
        strided = contiguous_constants(flat)
        if strided:
            notes.append(f"{len(strided)} constant(s) stored contiguously (ExecuTorch reads a strided constant as "
                         f"if it were contiguous): {', '.join(strided[:3])}{', ...' if len(strided) > 3 else ''}")
        if precision is Precision.INT8:
            from edgekit.quant.pt2e import quantize_pt2e

            if delegate != "xnnpack":
                raise UsageError(f"int8 ExecuTorch programs are quantized for XNNPACK here; --delegate {delegate} "
                                 f"takes fp32 or fp16")
            result = quantize_pt2e(flat, example, xnnpack_quantizer, int8, "XNNPACK quantizer")
            program_model, quantization = result.model, result.info
        elif precision is Precision.FP16:
            program_model = Half(copy.deepcopy(flat))
            notes.append(f"fp16: the program computes in half precision, its input and outputs float32; "
                         f"{len(program_model.islands)} module(s) kept in float32 (LayerNorm, attention)")
        else:
            program_model = flat
        exported, layer_norms = two_pass_layer_norm(capture(program_model, example, "ExecuTorch", dynamic))
        if layer_norms:
            notes.append(f"{layer_norms} LayerNorm(s) written out in two passes: ExecuTorch's portable layer_norm "
                         f"kernel loses precision when the mean is large next to the spread")
        program, report, mapping = lower(exported, delegate)
        (out_dir / PROGRAM).write_bytes(program.buffer)
        (out_dir / REPORT_FILE).write_text(json.dumps({"delegation": report, "program": mapping}, indent=2) + "\n")
        share = report["flops"]["share"]
        if report["nodes"]["portable"]:
            top = ", ".join(f"{op} x{n}" for op, n in list(report["portable_ops"].items())[:4])
            notes.append(f"ExecuTorch: {delegate} runs {share * 100:.1f}% of the FLOPs ({report['nodes']['delegated']} "
                         f"nodes in {report['subgraphs']} subgraphs); {report['nodes']['portable']} nodes run on the "
                         f"portable kernels ({top}); see --explain or {REPORT_FILE}")
        version = executorch_version()
        names = [o["name"] for o in outputs]
        runtime = {"name": "executorch", "version": version, "delegate": delegate, "backend": BACKEND_IDS[delegate]}
        run_options = {"inputs": [inputs[0]["name"]], "outputs": names, "delegate": delegate}
        summary = {k: v for k, v in report.items() if k != "portable"}
        return BuildResult([PROGRAM, REPORT_FILE], runtime, precision, run_options, notes, inputs=inputs,
                           outputs=outputs, quantization=quantization,
                           export={"converter": f"executorch {version}", "frontend": "torch.export",
                                   "format": "pte", "delegate": delegate, "delegation": summary,
                                   "portable": report["portable"][:20], "notes": notes,
                                   "two_pass_layer_norm": layer_norms, "contiguous_constants": strided,
                                   **({"fp16_islands": program_model.islands} if precision is Precision.FP16 else {})})

    def cannot_run_here(self, built: BuildResult) -> str | None:
        delegate = (built.options or {}).get("delegate", "xnnpack")
        if delegate != "xnnpack":
            return f"a program lowered for {delegate} runs on {DEVICES.get(delegate, 'its device')}"
        return None

    def open(self, bundle_dir: Path, files: list[str], options: dict, threads: int | None = None) -> Engine:
        delegate = options.get("delegate", "xnnpack")
        if delegate != "xnnpack":
            raise UsageError(f"this ExecuTorch bundle is lowered for {delegate} and runs on "
                             f"{DEVICES.get(delegate, 'its device')}, not in this machine's ExecuTorch runtime")
        return open_engine("executorch", bundle_dir / files[0], options, threads)

    def preflight(self, manifest) -> list[str]:
        from edgekit.manifest import as_manifest

        delegate = (as_manifest(manifest).runtime_options or {}).get("delegate", "xnnpack")
        if delegate != "xnnpack":
            return [f"the program is lowered for {delegate}, which runs on {DEVICES.get(delegate, 'its device')}"]
        return super().preflight(manifest)


Backend = ExecuTorchBackend
