"""fold_batchnorm: an inference BatchNormalization after Conv / Gemm / 2-D MatMul folds into its weights."""
import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.rewrite.rules import fold_batchnorm
from tests.rewrite.harness import assert_same, ops, rewrite

RNG = np.random.default_rng(0)


def _bn_inits(channels: int) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("gamma", 1 + 0.1 * RNG.standard_normal(channels)), ("beta", 0.1 * RNG.standard_normal(channels)),
        ("mean", 0.1 * RNG.standard_normal(channels)), ("var", 0.5 + RNG.random(channels)))]


def _model(nodes, inits, x_shape, y_shape) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, y_shape)], inits)
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                                               ir_version=8))


def _bn(x: str) -> onnx.NodeProto:
    return helper.make_node("BatchNormalization", [x, "gamma", "beta", "mean", "var"], ["y"], epsilon=1e-3)


def test_conv_bn():
    w = numpy_helper.from_array(RNG.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    model = _model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), _bn("c")],
                   [w, *_bn_inits(8)], [1, 3, 8, 8], [1, 8, 8, 8])
    after, count, why = rewrite(fold_batchnorm.rewrite, model)
    assert count == 1 and why == ""
    assert ops(after) == {"Conv": 1}
    assert_same(model, after, atol=1e-5, rtol=1e-5)  # weights rescaled once in fp32: rounding only


def test_linear_bn1d_on_2d_input():
    w = numpy_helper.from_array(RNG.standard_normal((16, 8)).astype(np.float32), "w")
    b = numpy_helper.from_array(RNG.standard_normal(8).astype(np.float32), "b")
    model = _model([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]), _bn("a")],
                   [w, b, *_bn_inits(8)], [4, 16], [4, 8])
    after, count, _ = rewrite(fold_batchnorm.rewrite, model)
    assert count == 1
    assert ops(after) == {"Gemm": 1}
    assert_same(model, after, atol=1e-5, rtol=1e-5)


def test_3d_matmul_is_not_folded():
    # BN's channel axis is 1 of (B, C, N); a MatMul on (B, N, K) writes K on the last axis: not the same channels
    w = numpy_helper.from_array(RNG.standard_normal((8, 8)).astype(np.float32), "w")
    model = _model([helper.make_node("MatMul", ["x", "w"], ["m"]), _bn("m")], [w, *_bn_inits(8)], [2, 8, 8], [2, 8, 8])
    after, count, why = rewrite(fold_batchnorm.rewrite, model)
    assert count == 0 and "not 2-D" in why
    assert ops(after)["BatchNormalization"] == 1


def test_shared_weight_is_not_folded():
    w = numpy_helper.from_array(RNG.standard_normal((8, 3, 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Conv", ["x", "w"], ["c2"]),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"]),
             helper.make_node("Add", ["bn", "c2"], ["y"])]
    model = _model(nodes, [w, *_bn_inits(8)], [1, 3, 4, 4], [1, 8, 4, 4])
    after, count, why = rewrite(fold_batchnorm.rewrite, model)
    assert count == 0 and "used by another node" in why
    assert_same(model, after, atol=0, rtol=0)
