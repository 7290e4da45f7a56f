"""Hardswish between int8 layers as QLinearAdd + QLinearMul (edgekit.quant.hardswish, ONNX Runtime recipes)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from edgekit.config import Precision, Target
from edgekit.stages.onnx_export import export_onnx, prepare_for_deploy
from edgekit.quant.calibrate import calibrate
from edgekit.quant.hardswish import int8_hardswish
from edgekit.quant.islands import find_islands
from edgekit.quant.options import Method, QuantOptions
from edgekit.quant.qdq import FLOAT_OUTPUT_OPS, QdqRecipe, quantize_qdq
from edgekit.quant.recipes import onnxruntime_recipes, qdq_recipes
from tests.helpers import int8_plan
from tests.helpers import needs_unsaturated_int8


def _session(model: onnx.ModelProto, optimized: str | None = None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if optimized:
        so.optimized_model_filepath = optimized
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _hardswish(x):
    return x * np.clip(x / 6 + 0.5, 0, 1)


def _dq_hardswish_q(code, zero_point: int, out_scale: float, out_zero: int) -> onnx.ModelProto:
    """x_q (every code) -> DequantizeLinear -> HardSwish -> QuantizeLinear: what the QDQ graph holds."""
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(zero_point, code), "z"),
             numpy_helper.from_array(np.array(out_scale, np.float32), "os"),
             numpy_helper.from_array(np.array(out_zero, code), "oz")]
    elem = TensorProto.UINT8 if code == np.uint8 else TensorProto.INT8
    nodes = [helper.make_node("DequantizeLinear", ["x_q", "s", "z"], ["x"], name="dq"),
             helper.make_node("HardSwish", ["x"], ["y"], name="hs"),
             helper.make_node("QuantizeLinear", ["y", "os", "oz"], ["y_q"], name="q")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x_q", elem, [256])],
                          [helper.make_tensor_value_info("y_q", elem, [256])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_every_input_code_within_one_output_step(tmp_path):
    """Over all 256 codes of a uint8 tensor (x from -6.4 to 6.35: both saturations and the curve between), the
    rewritten Hardswish lands within one output step of the exact value, and ONNX Runtime runs it as int8 ops."""
    out_scale, out_zero = 6.8 / 255, 14
    plain = _dq_hardswish_q(np.uint8, 128, out_scale, out_zero)
    rewritten, count = int8_hardswish(plain)
    assert count == 1 and "HardSwish" not in [n.op_type for n in rewritten.graph.node]
    onnx.checker.check_model(rewritten, full_check=True)

    x_q = np.arange(256, dtype=np.uint8)
    x = (x_q.astype(np.float32) - 128) * np.float32(0.05)
    exact = _hardswish(x) / out_scale + out_zero  # in output codes, unrounded
    got = _session(rewritten, str(tmp_path / "opt.onnx")).run(None, {"x_q": x_q})[0].astype(np.float32)
    assert np.abs(got - exact).max() <= 1.0, np.abs(got - exact).max()
    ref = _session(plain).run(None, {"x_q": x_q})[0].astype(np.float32)
    assert np.abs(ref - exact).max() <= 0.5 + 1e-3  # the float Hardswish rounds once: the rewrite adds the gate's step
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert ops == ["QLinearAdd", "QLinearMul"], ops


def test_int8_codes_are_left_float_because_onnxruntime_would_not_fuse_them(tmp_path):
    """With int8 (S8S8) codes ONNX Runtime runs DQ -> Add -> Q as float ops, not QLinearAdd: the rewrite would add
    passes, so it leaves such a Hardswish alone. (If a later ONNX Runtime fuses them, this says so.)"""
    plain = _dq_hardswish_q(np.int8, 0, 6.35 / 127, 0)
    assert int8_hardswish(plain)[1] == 0
    as_int8 = onnx.ModelProto.FromString(int8_hardswish(_dq_hardswish_q(np.uint8, 128, 6.8 / 255, 14))[0]
                                         .SerializeToString())
    for t in as_int8.graph.initializer:  # the same rewrite with int8 codes (zero points 0, -128 for the gate)
        if t.data_type == TensorProto.UINT8:
            v = numpy_helper.to_array(t).astype(np.int16) - 128
            t.CopyFrom(numpy_helper.from_array(v.astype(np.int8), t.name))
    for v in (*as_int8.graph.input, *as_int8.graph.output):
        v.type.tensor_type.elem_type = TensorProto.INT8
    _session(as_int8, str(tmp_path / "opt.onnx"))
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert "QLinearAdd" not in ops and "Add" in ops, ops


def _block() -> onnx.ModelProto:
    """Conv -> HardSwish -> Conv -+-> HardSwish -> (graph output "gated")
                                  +-> HardSwish "kept" -> Conv -> output"""
    rng = np.random.default_rng(0)
    w = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.5, n)
         for n, s in (("w0", (8, 3, 3, 3)), ("w1", (8, 8, 1, 1)), ("w2", (4, 8, 1, 1)))]
    nodes = [helper.make_node("Conv", ["input", "w0"], ["a"], name="stem", pads=[1, 1, 1, 1]),
             helper.make_node("HardSwish", ["a"], ["b"], name="hs_between"),
             helper.make_node("Conv", ["b", "w1"], ["c"], name="conv"),
             helper.make_node("HardSwish", ["c"], ["gated"], name="hs_to_output"),
             helper.make_node("HardSwish", ["c"], ["d"], name="hs_kept"),
             helper.make_node("Conv", ["d", "w2"], ["output"], name="head")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("gated", TensorProto.FLOAT, None)], w)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _ranges(model: onnx.ModelProto, x: np.ndarray) -> dict:
    """Min-max activation ranges of ``model`` on ``x`` (edgekit's calibration, no cache)."""
    return calibrate(model, [x], "test", QuantOptions(method=Method.MINMAX, cache=False))[0]


@needs_unsaturated_int8
def test_recipe_rewrites_only_a_hardswish_between_int8_layers():
    """In the uint8 QDQ graph only the Hardswish whose readers are all int8 is rewritten: not one feeding the graph
    output (float) nor one kept float (an island, a kept block); the outputs stay as close to fp32."""
    model = _block()
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    ranges = _ranges(model, x)
    recipe = QdqRecipe(float_output_ops=FLOAT_OUTPUT_OPS)
    plain = quantize_qdq(model, ranges, set(), recipe)
    rewritten = quantize_qdq(model, ranges, {"hs_kept"},
                             QdqRecipe(float_output_ops=FLOAT_OUTPUT_OPS, int8_hardswish=True))
    assert sorted(n.name for n in rewritten.graph.node if n.op_type == "HardSwish") == ["hs_kept", "hs_to_output"]
    assert sum(n.op_type == "HardSwish" for n in plain.graph.node) == 3
    assert "hardswish" in QdqRecipe(int8_hardswish=True).to_dict() and "hardswish" not in recipe.to_dict()
    ref = _session(model).run(None, {"input": x})
    for q in (plain, rewritten):
        for r, o in zip(ref, _session(q).run(None, {"input": x})):
            cos = float((r * o).sum() / np.linalg.norm(r) / np.linalg.norm(o))
            assert cos > 0.999, cos


def test_leaves_graphs_without_the_pattern_untouched():
    model = _block()  # float: no HardSwish reads a DequantizeLinear
    out, count = int8_hardswish(model)
    assert count == 0 and out is model


def test_onnxruntime_uint8_recipes_use_it_and_openvino_does_not():
    model = _block()
    ranges = _ranges(model, np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32))
    ort_recipes = onnxruntime_recipes(model, [], ranges, QuantOptions())
    ov_recipes = qdq_recipes(model, ranges, QuantOptions(), int8_hardswish=False)  # OpenVINO's (besides NNCF's)
    assert [c.name for c in ort_recipes if "hardswish" in c.describe] == ["edgekit-u8s8"]  # not S8S8 (module doc)
    assert not any("hardswish" in c.describe for c in ov_recipes)
    assert "HardSwish" in [n.op_type for n in ov_recipes[0].make(set()).graph.node]  # OpenVINO fuses it as it is


def test_zoo_efficientvit_hardswish_runs_as_int8_ops(tmp_path):
    """On the exported zoo EfficientViT-B0 every Hardswish between quantized convolutions is rewritten, and ONNX
    Runtime's optimized graph runs them as QLinearMul (none left as HardSwish / HardSigmoid between int8 layers)."""
    from edgekit.models import create_model

    torch.manual_seed(0)
    model = export_onnx(prepare_for_deploy(create_model("efficientvit_b0", img_size=(64, 64), num_classes=10)),
                        (1, 3, 64, 64)).model
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    islands = {i.node for i in find_islands(model, int8_plan(Target.ONNX).island_rules, Precision.INT8)}
    recipe = QdqRecipe(float_output_ops=FLOAT_OUTPUT_OPS, int8_hardswish=True)
    q = quantize_qdq(model, _ranges(model, x), islands, recipe)
    total = sum(n.op_type == "HardSwish" for n in model.graph.node)
    left = sum(n.op_type == "HardSwish" for n in q.graph.node)
    assert total > 20 and left < total // 4, (total, left)  # only those next to a float island or the head stay
    _session(q, str(tmp_path / "opt.onnx"))
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert ops.count("QLinearMul") >= total - left, (ops.count("QLinearMul"), total - left)
    assert ops.count("HardSigmoid") + ops.count("HardSwish") <= left
