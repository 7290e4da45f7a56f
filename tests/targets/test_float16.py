"""fp16 conversion for ONNX Runtime and TensorRT: ONNX Runtime's converter, repaired where it writes one
identical Cast per float reader of a shared initializer (what made Swin-T-seg's fp16 export fail to load)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.targets.float16 import drop_duplicate_nodes, to_float16
from edgekit.targets.onnxruntime.backend import to_fp16


def _shared_weight_model() -> onnx.ModelProto:
    """Two LayerNorms (fp32 islands) and a Mul (fp16) reading one weight, as onnxslim leaves a constant
    that several layers share (Swin-T-seg: its decode head's Resize scales, equal LayerNorm weights)."""
    w = numpy_helper.from_array(np.linspace(0.5, 1.5, 8).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    nodes = [helper.make_node("LayerNormalization", ["input", "w", "b"], ["y1"], axis=-1, name="ln1"),
             helper.make_node("LayerNormalization", ["y1", "w", "b"], ["y2"], axis=-1, name="ln2"),
             helper.make_node("Mul", ["y2", "w"], ["output"], name="scale")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 8])], [w, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0]


def test_fp16_of_a_weight_shared_by_islands_loads_and_matches():
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = _shared_weight_model()
    raw = convert_float_to_float16(onnx.ModelProto.FromString(model.SerializeToString()), keep_io_types=True,
                                   node_block_list=["ln1", "ln2"])
    names = [n.name for n in raw.graph.node]
    if len(names) != len(set(names)):  # this converter writes duplicate casts: what the export failed on before
        with pytest.raises(Exception, match="same node name"):
            _run(raw, np.zeros((1, 4, 8), np.float32))

    # whatever the converter writes, edgekit's fp16 graph loads and matches fp32
    x = np.random.default_rng(0).standard_normal((1, 4, 8)).astype(np.float32)
    for fixed in (to_fp16(model), to_float16(model, keep_io_types=True, node_block_list=["ln1", "ln2"])):
        names = [n.name for n in fixed.graph.node]
        assert len(names) == len(set(names))
        # normalized activations times weights up to 1.5, fp16 weights and product: a few fp16 ulps of |y| <= ~4
        np.testing.assert_allclose(_run(fixed, x), _run(model, x), atol=1e-2, rtol=0)


def test_drop_duplicate_nodes_keeps_distinct_nodes_and_order():
    a = helper.make_node("Relu", ["x"], ["y"], name="n")
    b = helper.make_node("Relu", ["x"], ["y"], name="n")  # identical: dropped
    c = helper.make_node("Relu", ["x"], ["z"], name="n")  # same name, other output: kept (not ours to judge)
    graph = helper.make_graph([a, b, c], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])],
                              value_info=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])] * 2)
    out = drop_duplicate_nodes(helper.make_model(graph))
    assert [(n.name, list(n.output)) for n in out.graph.node] == [("n", ["y"]), ("n", ["z"])]
    assert [v.name for v in out.graph.value_info] == ["y"]
