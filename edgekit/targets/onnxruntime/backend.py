"""ONNX Runtime target: the ONNX file itself, opened with tuned session options."""
from __future__ import annotations

from pathlib import Path

import onnx

from edgekit.config import Precision, Target
from edgekit.engines import Engine
from edgekit.errors import EdgekitFailure
from edgekit.targets.base import BuildResult, TargetBackend, check_ops, open_engine
from edgekit.targets.onnxruntime.options import OnnxRuntimeOptions

MODEL_FILE = "model.onnx"


class OnnxRuntimeBackend(TargetBackend):
    target = Target.ONNX
    envelopes = True
    precisions = (Precision.FP32, Precision.FP16, Precision.INT8)
    sdk = "onnxruntime"
    Options = OnnxRuntimeOptions

    @property
    def int8(self):
        """Scored in ONNX Runtime; its recipes; a Resize after an int8 layer kept in float (see quant.islands)."""
        from edgekit.quant.plan import Int8Plan, Scoring
        from edgekit.quant.recipes import onnxruntime_recipes

        return Int8Plan(Scoring.ONNXRUNTIME, "ONNX Runtime", onnxruntime_recipes, island_rules=("resize",))

    def runtime_version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def build(self, model: onnx.ModelProto, spec, out_dir: Path, precision: Precision,
              keep_fp: tuple[str, ...] = ()) -> BuildResult:
        check_ops(model, {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}, "ONNX Runtime")
        notes = []
        if precision is Precision.FP16:
            model = to_fp16(model, keep_fp)
            notes.append("weights and activations in fp16; inputs and outputs stay fp32")
        elif precision not in (Precision.FP32, Precision.INT8):  # int8 models arrive already quantized (QDQ)
            raise EdgekitFailure(f"ONNX Runtime target does not support precision {precision.value}")
        onnx.save_model(model, str(out_dir / MODEL_FILE))
        _check_loads(out_dir / MODEL_FILE)
        if self.options.mobile:  # .ort format + reduced-operator config (--mobile)
            from edgekit.targets.onnxruntime.mobile import build_mobile

            return build_mobile(out_dir / MODEL_FILE, precision, self.runtime_version(), notes)
        return BuildResult([MODEL_FILE], {"name": "onnxruntime", "version": self.runtime_version()}, precision,
                           {"providers": ["CPUExecutionProvider"],
                            "graph_optimization_level": self.options.graph_optimization_level}, notes)

    def open(self, bundle_dir: Path, files: list[str], options: dict, threads: int | None = None) -> Engine:
        return open_engine("onnxruntime", bundle_dir / files[0], options, threads)


def to_fp16(model: onnx.ModelProto, keep_fp: tuple[str, ...] = ()) -> onnx.ModelProto:
    """fp16 weights and compute, with fp32 model inputs and outputs so the app feeds what it always fed;
    the fp16 precision islands (LayerNorm, Softmax, linear-attention normalizer: edgekit.quant.islands) and the
    nodes ``keep_fp`` matches stay fp32."""
    from edgekit.quant.islands import float16_islands, match_patterns
    from edgekit.targets.float16 import to_float16

    keep = list(dict.fromkeys(float16_islands(model) + match_patterns(model, keep_fp)))
    return to_float16(model, keep_io_types=True, disable_shape_infer=False, node_block_list=keep)


def _check_loads(path: Path) -> None:
    """Fail at build time, naming the op and node, when ONNX Runtime cannot run the graph."""
    open_engine("onnxruntime", path, {}, threads=1).close()


Backend = OnnxRuntimeBackend
