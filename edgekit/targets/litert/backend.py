"""LiteRT target: the prepared torch model converted by litert-torch to ``model.tflite``, run here by LiteRT's
interpreter (the ``ai-edge-litert`` wheel) on its CPU kernels with the XNNPACK delegate.

Precisions: fp32; fp16 (float16 weights, float compute, by ai-edge-quantizer's float casting of the fp32 model:
litert-torch cannot convert a half-precision model's LayerNorm); int8 through PT2E with litert-torch's quantizer
(:mod:`edgekit.quant.pt2e`: edgekit's islands and budget applied to its annotation).
"""
from __future__ import annotations

import copy
import importlib.util
import json
from collections import Counter
from pathlib import Path

from edgekit.config import Precision, Target
from edgekit.engines import Engine
from edgekit.engines.base import first_line
from edgekit.errors import EdgekitFailure, UsageError
from edgekit.targets.base import BuildResult, open_engine
from edgekit.targets.litert.options import LiteRtOptions
from edgekit.targets.torch_program import Pt2eBackend, module_units, user_path

MODEL = "model.tflite"
REPORT_FILE = "litert.json"


def litert_quantizer():
    """litert-torch's PT2E quantizer: per-channel symmetric int8 weights, per-tensor int8 activations."""
    from edgekit.targets.torch_program import quiet

    with quiet():  # torchao, imported with it, logs the CUDA kernels it cannot load
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    return PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))


def versions() -> dict:
    from importlib.metadata import version

    return {"litert_torch": version("litert-torch"), "ai_edge_litert": version("ai-edge-litert")}


def float16_weights(src: Path, dst: Path) -> None:
    """ai-edge-quantizer's float casting: every weight stored as float16, computed in float."""
    from ai_edge_quantizer import quantizer

    q = quantizer.Quantizer(str(src))
    q.load_quantization_recipe([{
        "regex": ".*", "operation": "*", "algorithm_key": "float_casting",
        "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"}, "compute_precision": "FLOAT",
                      "explicit_dequantize": True}}])
    q.quantize().export_model(str(dst), overwrite=True)


def inspect_model(path: Path, modules: set[str]) -> dict:
    """The model's operators, how many XNNPACK partitions the interpreter forms (its DELEGATE nodes), and the op
    map the profiler reads: each op's index and its ONNX-style name (``/backbone/attn/qkv/FULLY_CONNECTED``),
    its module read from the output tensor's name. ``modules``: the converted model's module paths."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    tensors = {t["index"]: t["name"] for t in it.get_tensor_details()}
    details = it._get_ops_details()
    ops = Counter(d["op_name"] for d in details)
    delegates = ops.pop("DELEGATE", 0)
    op_map = []
    for i, d in enumerate(details):
        if d["op_name"] == "DELEGATE":
            continue
        # the output tensor's name; a graph output is named after the signature, so then the weights' names
        names = [tensors.get(t, "") for t in list(d["outputs"][:1]) + list(d["inputs"][1:])]
        paths = [module_of(part, modules) for n in names for part in n.split(";;")]
        units = module_units(paths[0] if paths and paths[0] else max(paths, key=len, default=""))
        op_map.append({"index": i, "op": d["op_name"], "name": "/" + "/".join([*units, d["op_name"]])})
    return {"ops": dict(ops.most_common()), "xnnpack_partitions": delegates, "op_map": op_map}


def module_of(tensor_name: str, modules: set[str]) -> str:
    """The module path a litert-torch tensor name carries: ``Root/pkg.Class_attr/pkg.Other_attr;3`` is
    ``attr.attr`` (a class or attribute name may hold '_': the split is the one naming a real module)."""
    path = ""
    for segment in tensor_name.split(";")[0].split("/")[1:]:
        found = None
        for i, ch in enumerate(segment):
            if ch == "_" and i + 1 < len(segment):
                candidate = f"{path}.{segment[i + 1:]}" if path else segment[i + 1:]
                if candidate in modules:
                    found = candidate
                    break
        if found is None:
            break
        path = found
    return user_path(path)


class LiteRtBackend(Pt2eBackend):
    target = Target.LITERT
    sdk = "litert_torch"
    Options = LiteRtOptions

    def missing(self) -> str | None:
        for module in ("litert_torch", "ai_edge_litert"):
            if importlib.util.find_spec(module) is None:
                return f"target litert needs litert-torch and ai-edge-litert: pip install 'edgekit[litert]'"
        return None

    def runtime_version(self) -> str:
        return versions()["ai_edge_litert"]

    def check_model(self, spec, dynamic_batch: bool) -> None:
        if dynamic_batch:
            raise UsageError("LiteRT bundles take a fixed batch: drop --dynamic-batch and export with --input-shape "
                             "for the batch the app runs")

    def build_torch(self, model, spec, out_dir: Path, precision: Precision, int8=None) -> BuildResult:
        import tempfile

        from edgekit.targets.torch_program import Flat, contiguous_constants, describe_io, example_input, quiet

        flat = Flat(copy.deepcopy(model)).eval()
        example = example_input(spec)
        inputs, outputs = describe_io(flat, example, spec)
        quantization, notes, quant_config = None, [], None
        strided = contiguous_constants(flat)
        if strided:
            notes.append(f"{len(strided)} constant(s) stored contiguously (litert-torch reads a strided constant as "
                         f"if it were contiguous): {', '.join(strided[:3])}{', ...' if len(strided) > 3 else ''}")
        if precision is Precision.INT8:
            from edgekit.quant.pt2e import quantize_pt2e

            result = quantize_pt2e(flat, example, litert_quantizer, int8, "litert-torch PT2E quantizer",
                                   convert_kwargs={"fold_quantize": False})
            converted, quantization = result.model, result.info
            with quiet():
                from litert_torch.quantize.quant_config import QuantConfig

            quant_config = QuantConfig(pt2e_quantizer=litert_quantizer())
        else:
            converted = flat
        try:
            with quiet():
                import litert_torch

                edge_model = litert_torch.convert(converted, (example,), quant_config=quant_config)
                if precision is Precision.FP16:
                    with tempfile.TemporaryDirectory() as tmp:
                        edge_model.export(str(Path(tmp) / "fp32.tflite"))
                        float16_weights(Path(tmp) / "fp32.tflite", out_dir / MODEL)
                    notes.append("fp16: float16 weights (ai-edge-quantizer float casting), computed in float")
                else:
                    edge_model.export(str(out_dir / MODEL))
        except Exception as e:  # noqa: BLE001 - the converter raises many types; its first line names the op
            raise EdgekitFailure(f"litert-torch could not convert the model: {first_line(e, 300)}; replace the module "
                                 f"that uses it or choose another target") from None
        try:
            with quiet():
                report = inspect_model(out_dir / MODEL, {name for name, _ in flat.named_modules()})
        except Exception as e:  # noqa: BLE001 - an op LiteRT has no kernel for fails here, before the gate
            raise EdgekitFailure(f"LiteRT cannot run the converted model: {first_line(e, 300)}; replace the module that "
                                 f"emits that op or choose another target") from None
        (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        v = versions()
        names = [o["name"] for o in outputs]
        return BuildResult([MODEL, REPORT_FILE], {"name": "litert", "version": v["ai_edge_litert"],
                                                  "converter": f"litert-torch {v['litert_torch']}"},
                           precision, {"inputs": [inputs[0]["name"]], "outputs": names}, notes, inputs=inputs,
                           outputs=outputs, quantization=quantization,
                           export={"converter": f"litert-torch {v['litert_torch']}", "frontend": "torch.export",
                                   "format": "tflite", "ops": report["ops"],
                                   "xnnpack_partitions": report["xnnpack_partitions"], "notes": notes,
                                   "contiguous_constants": strided})

    def open(self, bundle_dir: Path, files: list[str], options: dict, threads: int | None = None) -> Engine:
        return open_engine("litert", bundle_dir / files[0], options, threads)

    def preflight(self, manifest) -> list[str]:
        if importlib.util.find_spec("ai_edge_litert") is None:
            return ["LiteRT bundles run with the ai-edge-litert interpreter: pip install 'edgekit[litert]'"]
        return super().preflight(manifest)


Backend = LiteRtBackend
