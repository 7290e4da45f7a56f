"""expand_window_bias: a per-window bias added through a (B, nW*h, N, N) view becomes one plain 4-D Add."""
import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.rewrite.rules import expand_window_bias
from tests.rewrite.harness import assert_same, ops, rewrite

NW, HEADS, N, BATCH = 4, 3, 9, 2


def _model(batch: int | str) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array([-1, NW * HEADS, N, N], np.int64), "g"),
             numpy_helper.from_array(np.array([-1, HEADS, N, N], np.int64), "h"),
             numpy_helper.from_array(rng.standard_normal((1, NW * HEADS, N, N)).astype(np.float32), "bias")]
    nodes = [helper.make_node("Reshape", ["s", "g"], ["grouped"]), helper.make_node("Add", ["grouped", "bias"], ["b"]),
             helper.make_node("Reshape", ["b", "h"], ["m"]), helper.make_node("Softmax", ["m"], ["y"], axis=-1)]
    shape = [batch, HEADS, N, N]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)], inits)
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                                               ir_version=8))


def test_view_add_becomes_plain_add():
    before = _model(BATCH * NW)
    after, count, why = rewrite(expand_window_bias.rewrite, before)
    assert count == 1 and why == ""
    assert ops(after) == {"Add": 1, "Softmax": 1}
    bias = next(i for i in after.graph.initializer if i.name.endswith("window_bias"))
    assert list(bias.dims) == [BATCH * NW, HEADS, N, N]
    assert_same(before, after, atol=0, rtol=0)  # the same additions, laid out per window


def test_dynamic_batch_is_left_alone():
    before = _model("batch")
    after, count, why = rewrite(expand_window_bias.rewrite, before)
    assert count == 0 and "static shape" in why
    assert ops(after)["Reshape"] == 2


def test_openvino_converts_the_expanded_form(tmp_path):
    import openvino as ov

    after, _, _ = rewrite(expand_window_bias.rewrite, _model(BATCH * NW))
    onnx.save(after, tmp_path / "m.onnx")
    assert ov.convert_model(tmp_path / "m.onnx") is not None
