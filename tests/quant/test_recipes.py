"""Recipe robustness: NNCF on graphs with Cast(initializer) (inlined plugin bodies), and a failing recipe
skipped rather than failing the export."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.calib import CalibrationSet
from edgekit.config import Target, Task
from edgekit.errors import EdgekitFailure
from edgekit.quant import int8 as int8_mod
from edgekit.quant.int8 import quantize_int8
from edgekit.quant.options import QuantOptions
from edgekit.quant.recipes import Candidate, _fold_initializer_casts, _nncf
from edgekit.quant.scoring import Budget
from tests.helpers import int8_plan


def _cast_weight_model() -> onnx.ModelProto:
    """x[1,8] @ Cast(W fp16 -> fp32) + relu: the shape an inlined WindowAttention bias cast has."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float16), "w16")
    nodes = [helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT, name="cast_w"),
             helper.make_node("MatMul", ["input", "w"], ["mm"], name="mm"),
             helper.make_node("Relu", ["mm"], ["output"], name="relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def test_fold_initializer_casts_keeps_values():
    import onnxruntime as ort

    model = _cast_weight_model()
    folded = _fold_initializer_casts(model)
    assert [n.op_type for n in folded.graph.node] == ["MatMul", "Relu"]
    assert [n.op_type for n in model.graph.node][0] == "Cast"  # the input model is not modified
    x = np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)
    def run(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]

    np.testing.assert_array_equal(run(model), run(folded))


def test_nncf_quantizes_a_graph_with_cast_initializers():
    """NNCF's own preprocessing fails on Cast(initializer) with 'AttributeError: type' (what broke OpenVINO
    int8 of Swin once its attention became the plugin); edgekit's NNCF recipe folds those casts first."""
    pytest.importorskip("nncf")
    model = _cast_weight_model()
    inputs = [np.random.default_rng(i).standard_normal((1, 8)).astype(np.float32) for i in range(4)]
    q = _nncf(model, inputs, set(), None, None)
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)
    assert not any(n.op_type == "Cast" for n in q.graph.node)


def _plugin_model() -> onnx.ModelProto:
    """x @ W1 -> LinearAttention (named like an exported block) -> @ W2: a plugin between two GEMMs."""
    rng = np.random.default_rng(0)
    w1, w2 = (numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), n) for n in ("w1", "w2"))
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["q"], name="/proj_in/MatMul"),
             helper.make_node("LinearAttention", ["q", "q", "q"], ["att"], domain="edgekit", eps=1e-5,
                              kernel="relu", name="/blk/LinearAttention"),
             helper.make_node("MatMul", ["att", "w2"], ["output"], name="/proj_out/MatMul")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 16, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2, 16, 8])], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("edgekit", 1)])
    model.ir_version = 8
    return model


def test_nncf_keeps_a_kept_plugins_inlined_body_float():
    """NNCF sees the plugin inlined; its island must cover the body (the linear-attention matmuls and
    division), not only the call's name, which no longer exists there. Without that, NNCF quantized
    the inlined matmuls of every LinearAttention island (trained EfficientViT-B0 at 256: cosine 0.97)."""
    pytest.importorskip("nncf")
    from edgekit.plugins import inlined_from

    model = _plugin_model()
    inputs = [np.random.default_rng(i).standard_normal((1, 2, 16, 8)).astype(np.float32) for i in range(4)]

    def quantized_body_nodes(q: onnx.ModelProto) -> set[str]:
        dq_out = {o for n in q.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        return {n.name for n in q.graph.node if inlined_from("/blk/LinearAttention", n.name)
                and any(i in dq_out for i in n.input)}

    assert quantized_body_nodes(_nncf(model, inputs, set(), "transformer", None))  # NNCF does quantize them
    kept = _nncf(model, inputs, {"/blk/LinearAttention"}, "transformer", None)
    assert quantized_body_nodes(kept) == set()
    assert sum(n.op_type == "QuantizeLinear" for n in kept.graph.node) >= 2  # the projections still are int8


def test_a_failing_recipe_is_skipped_and_recorded(monkeypatch):
    """One tool failing on a graph costs its candidate, not the export; all failing is one clear error."""
    model = _cast_weight_model()
    inputs = [np.random.default_rng(i).standard_normal((1, 8)).astype(np.float32) for i in range(4)]
    calib = CalibrationSet(inputs=inputs, names=[f"x{i}" for i in range(4)], source="test", sha256="0" * 64)
    working = int8_mod.candidates_for

    def broken(make_error: bool):
        def candidates(plan, proto, inputs, ranges, options):
            def fail(keep):
                raise EdgekitFailure("NNCF quantization failed: AttributeError: type")
            bad = Candidate("broken", {}, fail)
            return [bad] + ([] if make_error else working(plan, proto, inputs, ranges, options))
        return candidates

    monkeypatch.setattr(int8_mod, "candidates_for", broken(False))
    result = quantize_int8(model, int8_plan(Target.ONNX), Task.CLASSIFICATION, calib,
                           QuantOptions(default_islands=False), Budget(0.0, 0.0), threads=1)
    by_name = {c["name"]: c for c in result.info["candidates"]}
    assert by_name["broken"]["error"].startswith("NNCF quantization failed") and not by_name["broken"]["chosen"]
    assert result.info["recipe"] != "broken" and any(c["chosen"] for c in by_name.values())

    monkeypatch.setattr(int8_mod, "candidates_for", broken(True))
    with pytest.raises(EdgekitFailure, match="no INT8 recipe could quantize this model: broken: NNCF"):
        quantize_int8(model, int8_plan(Target.ONNX), Task.CLASSIFICATION, calib, QuantOptions(default_islands=False),
                      Budget(0.0, 0.0), threads=1)


def _depthwise_model() -> onnx.ModelProto:
    """conv 3->8, depthwise 3x3 (group 8), pointwise 8->8, pool, linear: the EfficientViT/MobileNet pattern."""
    rng = np.random.default_rng(0)
    w = lambda *shape: numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32))  # noqa: E731
    inits = [w(8, 3, 3, 3), w(8, 1, 3, 3), w(8, 8, 1, 1), w(8, 4)]
    for name, t in zip(("w_stem", "w_dw", "w_pw", "w_fc"), inits):
        t.name = name
    nodes = [helper.make_node("Conv", ["input", "w_stem"], ["a"], pads=[1, 1, 1, 1], name="stem"),
             helper.make_node("Relu", ["a"], ["a1"], name="r1"),
             helper.make_node("Conv", ["a1", "w_dw"], ["b"], pads=[1, 1, 1, 1], group=8, name="dw"),
             helper.make_node("Relu", ["b"], ["b1"], name="r2"),
             helper.make_node("Conv", ["b1", "w_pw"], ["c"], name="pw"),
             helper.make_node("GlobalAveragePool", ["c"], ["d"], name="pool"),
             helper.make_node("Flatten", ["d"], ["e"], name="flat"),
             helper.make_node("MatMul", ["e", "w_fc"], ["output"], name="fc")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def test_dense_only_recipe_leaves_depthwise_convs_float_and_says_so(monkeypatch):
    from edgekit.quant.calibrate import calibrate
    from edgekit.quant.islands import depthwise_convs
    from edgekit.quant.qdq import float_nodes
    from edgekit.quant.recipes import onnxruntime_recipes

    model = _depthwise_model()
    assert depthwise_convs(model) == {"dw": "Conv"}
    inputs = [np.random.default_rng(i).standard_normal((1, 3, 16, 16)).astype(np.float32) for i in range(4)]
    options = QuantOptions(default_islands=False, cache=False)
    ranges, _ = calibrate(model, inputs, "0" * 64, options)
    by_name = {c.name: c for c in onnxruntime_recipes(model, inputs, ranges, options)}
    assert set(by_name) == {"edgekit-u8s8", "edgekit-s8s8", "edgekit-u8s8-dense"}
    assert "dw" not in float_nodes(by_name["edgekit-u8s8"].make(set()))
    dense = by_name["edgekit-u8s8-dense"].make(set())
    assert "dw" in float_nodes(dense) and {"stem", "pw"}.isdisjoint(float_nodes(dense))
    assert onnxruntime_recipes(_cast_weight_model(), [], {}, options)[-1].name == "edgekit-s8s8"  # no dw

    # chosen, its float nodes are listed as islands with the reason
    monkeypatch.setattr(int8_mod, "candidates_for", lambda *a: [by_name["edgekit-u8s8-dense"]])
    calib = CalibrationSet(inputs=inputs, names=[f"x{i}" for i in range(4)], source="test", sha256="0" * 64)
    result = quantize_int8(model, int8_plan(Target.ONNX), Task.CLASSIFICATION, calib, options, Budget(0.0, 0.0), threads=1)
    assert result.info["recipe"] == "edgekit-u8s8-dense"
    assert result.info["islands"]["recipe"]["nodes"] == ["dw"] and "depthwise" in result.info["islands"]["recipe"]["why"]


def test_a_recipe_that_cannot_meet_the_budget_falls_back_to_one_that_can(monkeypatch):
    """A recipe may quantize what no block holds (NNCF: Add / Mul inputs), so keeping every block in float
    does not bring it back; the next most accurate recipe then gets the budget loop, and the manifest says so."""
    model = _cast_weight_model()
    inputs = [np.random.default_rng(i).standard_normal((1, 8)).astype(np.float32) for i in range(4)]
    calib = CalibrationSet(inputs=inputs, names=[f"x{i}" for i in range(4)], source="test", sha256="1" * 64)
    working = int8_mod.candidates_for

    def candidates(plan, proto, inputs, ranges, options):
        real = working(plan, proto, inputs, ranges, options)[0]
        floor = Candidate("floor", {}, lambda keep: real.make(set()))  # quantizes "mm" whatever is kept
        return [floor, real]  # equal first scores: the first is chosen, and its loop cannot help

    monkeypatch.setattr(int8_mod, "candidates_for", candidates)
    budget = Budget(1.0, 0.999999)  # only float meets it: one int8 MatMul gives cosine ~0.9999
    result = quantize_int8(model, int8_plan(Target.ONNX), Task.CLASSIFICATION, calib,
                           QuantOptions(default_islands=False), budget, threads=1)
    b = result.info["budget"]
    assert b["met"] and result.info["recipe"] == "edgekit-u8s8"
    assert b["fallback"]["from"] == "floor" and b["fallback"]["steps"][-1]["cosine_min"] < 0.999999
    assert b["kept_blocks"] and not any(n.op_type == "QuantizeLinear" for n in result.model.graph.node)
    assert [c["name"] for c in result.info["candidates"] if c["chosen"]] == ["edgekit-u8s8"]
    from rich.console import Console

    from edgekit.cli.render import quantization_table

    console = Console(record=True, width=200)
    console.print(quantization_table(result.info))
    assert "edgekit-u8s8 instead of floor, which missed the budget with every block in float" in console.export_text()
