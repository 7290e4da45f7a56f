"""What every rule test does: build a tiny model, rewrite it with one rule, compare numerics in ONNX Runtime.

Tolerances are explicit at each call site (never a helper default).
"""
from __future__ import annotations

import collections
import io
import warnings

import numpy as np
import onnx
import onnx.parser
import onnx_ir as ir
import onnxruntime as ort
import torch

from edgekit.rewrite.ir_passes import infer_shapes, to_proto


def parse(text: str) -> onnx.ModelProto:
    """onnx.parser text -> a checked model with inferred shapes."""
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model)
    return onnx.shape_inference.infer_shapes(model)


def export(module: torch.nn.Module, *inputs: torch.Tensor, opset: int = 17) -> onnx.ModelProto:
    """A tiny torch module through the legacy exporter (what edgekit's export uses first)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), inputs, buf, dynamo=False, opset_version=opset,
                          input_names=[f"x{i}" for i in range(len(inputs))], output_names=["y"])
    return onnx.shape_inference.infer_shapes(onnx.load_from_string(buf.getvalue()))


def rewrite(rule_rewrite, model: onnx.ModelProto) -> tuple[onnx.ModelProto, int, str]:
    """Apply one rule's ``rewrite`` (a module's ``rewrite`` or a bound variant) -> (model, count, why not)."""
    ir_model = ir.serde.deserialize_model(model)
    infer_shapes(ir_model)
    count, why = rule_rewrite(ir_model)
    return to_proto(ir_model), count, why


def ops(model: onnx.ModelProto) -> collections.Counter:
    """Op histogram of the compute nodes (Constant nodes are data); other domains prefixed (``com.microsoft::Gelu``)."""
    return collections.Counter(f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in model.graph.node
                               if n.op_type != "Constant")


def max_rank(model: onnx.ModelProto) -> int:
    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return max(len(v.type.tensor_type.shape.dim) for v in values)


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # compare graphs, not ORT's fusions
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)


def feeds_for(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for value in model.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        out[value.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def assert_same(before: onnx.ModelProto, after: onnx.ModelProto, atol: float, rtol: float, seed: int = 0) -> None:
    feeds = feeds_for(before, seed)
    for a, b in zip(run(before, feeds), run(after, feeds), strict=True):
        np.testing.assert_allclose(b, a, atol=atol, rtol=rtol)
