"""fold_attention_bias: relative position bias + shift mask become one constant added at rank 4."""
import numpy as np
from onnx import helper, numpy_helper
import onnx

from edgekit.rewrite.rules import fold_attention_bias
from tests.rewrite.harness import assert_same, max_rank, ops, rewrite

RNG = np.random.default_rng(0)
NW, HEADS, N = 4, 3, 9  # 4 windows of 3x3 tokens, 3 heads; batch 2


def _model(with_bias: bool) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.array([-1, NW, HEADS, N, N], np.int64), "s5"),
             numpy_helper.from_array(np.array([-1, HEADS, N, N], np.int64), "s4"),
             numpy_helper.from_array((RNG.random((1, NW, 1, N, N)) < 0.3).astype(np.float32) * -100, "mask")]
    nodes = []
    logits = "s"
    if with_bias:
        inits.append(numpy_helper.from_array(RNG.standard_normal((1, HEADS, N, N)).astype(np.float32), "bias"))
        nodes.append(helper.make_node("Add", ["s", "bias"], ["sb"]))
        logits = "sb"
    nodes += [helper.make_node("Reshape", [logits, "s5"], ["g"]), helper.make_node("Add", ["g", "mask"], ["gm"]),
              helper.make_node("Reshape", ["gm", "s4"], ["m"]), helper.make_node("Softmax", ["m"], ["y"], axis=-1)]
    shape = [2 * NW, HEADS, N, N]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return onnx.shape_inference.infer_shapes(model)


def test_bias_and_mask_become_one_rank4_add():
    before = _model(with_bias=True)
    assert max_rank(before) == 5
    after, count, why = rewrite(fold_attention_bias.rewrite, before)
    assert count == 1 and why == ""
    assert ops(after) == {"Reshape": 2, "Add": 1, "Softmax": 1}
    assert max_rank(after) == 4
    # bias + mask summed once ahead of time instead of per element: fp32 rounding only
    assert_same(before, after, atol=1e-6, rtol=1e-5)


def test_mask_only():
    before = _model(with_bias=False)
    after, count, _ = rewrite(fold_attention_bias.rewrite, before)
    assert count == 1 and max_rank(after) == 4
    assert_same(before, after, atol=1e-6, rtol=1e-5)


def test_two_constant_adds():
    shape = [2, 3, 4]
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "a"], ["xa"]), helper.make_node("Add", ["xa", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(RNG.standard_normal((1, 3, 4)).astype(np.float32), "a"),
         numpy_helper.from_array(RNG.standard_normal((4,)).astype(np.float32), "b")])
    before = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                                                 ir_version=8))
    after, count, _ = rewrite(fold_attention_bias.rewrite, before)
    assert count == 1 and ops(after) == {"Add": 1}
    assert_same(before, after, atol=1e-6, rtol=1e-6)  # (x + a) + b vs x + (a + b): one rounding moved
