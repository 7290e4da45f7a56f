"""Q/DQ placement checked against TensorRT's explicit-quantization rules (int8 TensorRT-flavoured ONNX)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgekit.config import Precision
from edgekit.targets.tensorrt.flavour import StructureReport, check_structure
from edgekit.targets.tensorrt.qdq import check_qdq


def _conv_matmul_model() -> onnx.ModelProto:
    """x (1, 4, 8, 8) -> Conv(8) -> Relu -> flatten -> MatMul (512 x 10) -> y."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal((512, 10)).astype(np.float32) * 0.05, "w2"),
             numpy_helper.from_array(np.array([1, 512], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], "conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], "relu"),
             helper.make_node("Reshape", ["r", "shape"], ["f"], "flatten"),
             helper.make_node("MatMul", ["f", "w2"], ["y"], "fc")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _quantize(tmp_path, **kwargs) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.items = iter([{"x": rng.standard_normal((1, 4, 8, 8)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.items, None)

    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save_model(_conv_matmul_model(), str(src))
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, **kwargs)
    return onnx.load(str(dst))


def test_tensorrt_style_qdq_passes(tmp_path):
    from onnxruntime.quantization import QuantType

    # what TensorRT wants: signed int8, symmetric (zero point 0), per-channel weights, per-tensor activations
    model = _quantize(tmp_path, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                      extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    report = check_structure(model, Precision.INT8)
    assert report.ok, report.problems
    assert report.qdq["quantized_compute"] == 2 and report.qdq["per_channel"] >= 1
    assert report.qdq["half_quantized_compute"] == []


def test_onnxruntime_defaults_are_rejected(tmp_path):
    from onnxruntime.quantization import QuantType

    # ORT's defaults for its own CPU kernels: asymmetric activations, int32-quantized biases
    report = check_structure(_quantize(tmp_path), Precision.INT8)
    assert any("non-zero zero point" in p for p in report.problems), report.problems
    assert any("int32-quantized tensor (a quantized bias)" in p for p in report.problems), report.problems
    report = check_structure(_quantize(tmp_path, activation_type=QuantType.QUInt8), Precision.INT8)
    assert any("zero point is uint8" in p for p in report.problems), report.problems


def _qdq_by_hand(scale_is_input=False, zero_point=0, act_scales=1, weight_axis=0, q_feeds="DequantizeLinear",
                 quantize_weight=True) -> onnx.ModelProto:
    model = _conv_matmul_model()
    g = model.graph
    act_scale = np.full(act_scales, 0.1, np.float32).reshape(-1 if act_scales > 1 else ())
    g.initializer.extend([numpy_helper.from_array(act_scale, "s"),
                          numpy_helper.from_array(np.array(zero_point, np.int8), "zp"),
                          numpy_helper.from_array(np.full(8, 0.01, np.float32), "ws"),
                          numpy_helper.from_array(np.zeros(8, np.int8), "wzp"),
                          numpy_helper.from_array(np.zeros((8, 4, 3, 3), np.int8), "wq")])
    scale = "scale_in" if scale_is_input else "s"
    if scale_is_input:
        g.input.append(helper.make_tensor_value_info("scale_in", onnx.TensorProto.FLOAT, []))
    q = helper.make_node("QuantizeLinear", ["x", scale, "zp"], ["xq"], "q_x", **({"axis": 1} if act_scales > 1 else {}))
    consumer = (helper.make_node("DequantizeLinear", ["xq", scale, "zp"], ["xd"], "dq_x",
                                 **({"axis": 1} if act_scales > 1 else {}))
                if q_feeds == "DequantizeLinear" else helper.make_node("Cast", ["xq"], ["xd"], "not_dq", to=1))
    wdq = helper.make_node("DequantizeLinear", ["wq", "ws", "wzp"], ["wd"], "dq_w", axis=weight_axis)
    conv = g.node[0]
    conv.input[0] = "xd"
    if quantize_weight:
        conv.input[1] = "wd"
    g.node.insert(0, wdq)
    g.node.insert(0, consumer)
    g.node.insert(0, q)
    return model


@pytest.mark.parametrize("kwargs,message", [
    ({"scale_is_input": True}, "not a constant"),
    ({"zero_point": 3}, "non-zero zero point"),
    ({"act_scales": 4}, "per-channel scales on an activation"),
    ({"weight_axis": 1}, "per-channel axis 1 for Conv"),
    ({"q_feeds": "Cast"}, "feeds Cast 'not_dq', not a DequantizeLinear"),
])
def test_qdq_problems_are_named(kwargs, message):
    report = StructureReport()
    check_qdq(_qdq_by_hand(**kwargs), report, require=True)
    assert any(message in p for p in report.problems), report.problems


def test_well_placed_pair_passes_and_half_quantized_ops_are_warned():
    report = StructureReport()
    counts = check_qdq(_qdq_by_hand(), report, require=True)
    assert report.problems == [] and counts["quantized_compute"] == 1 and counts["float_compute"] == 1
    report = StructureReport()
    counts = check_qdq(_qdq_by_hand(quantize_weight=False), report, require=True)
    assert counts["half_quantized_compute"] == ["conv"]
    assert "only one input quantized" in report.warnings[0]
    assert any("no quantized Conv/MatMul/Gemm" in p for p in report.problems)


def test_the_quantize_steps_tensorrt_qdq_passes_the_parser_checks(tiny_onnx):
    from edgekit.calib import load_calibration
    from edgekit.quant import tensorrt as quant
    from edgekit.preprocess import Preprocess

    model, _ = tiny_onnx
    calib = load_calibration(None, Preprocess(size=(64, 64), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)))
    qdq = quant.tensorrt_qdq(model, calib, method="minmax", cache=False)
    report = check_structure(qdq, Precision.INT8)
    assert report.ok, report.problems
    assert report.qdq["quantized_compute"] >= 2
