"""Precision islands: which nodes stay float, why, and that the QDQ graph really leaves them float."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from edgekit.config import Precision, Target
from edgekit.errors import UsageError
from edgekit.stages.onnx_export import export_onnx, prepare_for_deploy
from edgekit.quant.graph import GraphView
from edgekit.quant.islands import find_islands
from edgekit.quant.qdq import float_nodes, quantize_qdq, quantized_nodes
from tests.helpers import int8_plan
from tests.helpers import needs_unsaturated_int8


@pytest.fixture(scope="module")
def hybrid():
    """The tiny hybrid (conv stem, 2 conv stages, 2 pre-norm softmax-attention blocks with GELU MLPs, linear head)."""
    from scripts.train_digits import tiny_hybrid

    torch.manual_seed(0)
    return export_onnx(prepare_for_deploy(tiny_hybrid(10)), (1, 3, 64, 64)).model


@pytest.fixture(scope="module")
def evit():
    """EfficientViT-B0 (ReLU linear attention) at 64x64, as exported (no rewrites)."""
    from edgekit.models import create_model

    torch.manual_seed(0)
    return export_onnx(prepare_for_deploy(create_model("efficientvit_b0", img_size=(64, 64), num_classes=10)),
                       (1, 3, 64, 64)).model


def _by_reason(islands):
    out = {}
    for i in islands:
        out.setdefault(i.reason, []).append(i)
    return out


def test_transformer_islands(hybrid):
    r = _by_reason(find_islands(hybrid, int8_plan(Target.ONNX).island_rules))
    assert sorted(i.op_type for i in r["layernorm"]) == ["LayerNormalization"] * 4  # norm1, norm2 x 2 blocks
    assert [i.op_type for i in r["softmax"]] == ["Softmax"] * 2
    assert [i.op_type for i in r["attention_matmul"]] == ["MatMul"] * 4  # q @ k^T and attn @ v, 2 blocks
    gelu_ops = sorted(i.op_type for i in r["gelu"])
    assert gelu_ops.count("Erf") == 2 and set(gelu_ops) <= {"Erf", "Div", "Add", "Mul"}
    assert [i.node for i in r["stem"]] == ["/stem/stem.0/Conv"]  # the first layer
    assert [i.node for i in r["head"]] == ["/head/Gemm"]  # the classifier
    names = {i.node for rs in r.values() for i in rs}
    g = GraphView(hybrid)
    # (onnxslim writes the linear layers as Reshape + Gemm + Reshape)
    projections = [n.name for n in g.nodes if n.op_type in ("MatMul", "Gemm") and g.is_weighted(n)]
    assert len(projections) == 9 and names & set(projections) == {"/head/Gemm"}  # qkv, proj, fc1, fc2 x 2: int8
    assert "/stages/stages.0/stages.0.0/Conv" not in names  # an ordinary conv is quantized


def test_linear_attention_islands(evit):
    g = GraphView(evit)
    islands = find_islands(evit, int8_plan(Target.OPENVINO).island_rules)
    r = _by_reason(islands)
    divs = [n for n in g.nodes if n.op_type == "Div" and not g.is_const(n.input[1])]
    assert len(divs) == 4 and {n.name for n in divs} <= {i.node for i in r["linear_attention"]}
    # the normalizer: sum of keys (ReduceSum), times queries (Mul), summed again, plus eps (Add) -> Div
    assert {"ReduceSum", "Mul", "Add", "Div"} <= {i.op_type for i in r["linear_attention"]}
    assert len(r["attention_matmul"]) == 8  # k^T v and q (k^T v) in 4 attention blocks
    assert r["stem"][0].node == g.first_weighted()[0].name and r["stem"][0].op_type == "Conv"
    assert [i.node for i in r["head"]] == ["/head/classifier/classifier.4/Gemm"]
    assert [i.op_type for i in r["layernorm"]] == ["LayerNormalization"]  # the classifier's own LayerNorm


def test_islands_stay_float_in_the_qdq_graph(hybrid):
    islands = find_islands(hybrid, int8_plan(Target.ONNX).island_rules)
    names = {i.node for i in islands}
    g = GraphView(hybrid)
    ranges = {t: (-4.0, 4.0) for n in hybrid.graph.node for t in n.output} | {"input": (-3.0, 3.0)}
    q = quantize_qdq(hybrid, ranges, names)
    fl, qn = float_nodes(q), quantized_nodes(q)
    assert names <= fl and not names & qn  # no island reads a dequantized activation
    weighted = {n.name for n in g.nodes if g.is_weighted(n)} - names
    assert weighted and weighted <= qn  # every other Conv / MatMul / Gemm got int8 inputs
    # without islands the stem, head and attention matmul inputs are quantized too
    q_all = quantize_qdq(hybrid, ranges, set())
    assert {"/stem/stem.0/Conv", "/head/Gemm"} <= quantized_nodes(q_all)


def test_keep_fp_patterns(hybrid):
    user = [i for i in find_islands(hybrid, int8_plan(Target.ONNX).island_rules, keep_fp=("*/blocks.1/*",)) if i.reason == "user"]
    assert user and all("/blocks.1/" in i.node for i in user)
    # op: patterns, and islands off: only what the user asked for
    only = find_islands(hybrid, int8_plan(Target.ONNX).island_rules, keep_fp=("op:Conv",), default=False)
    assert {i.op_type for i in only} == {"Conv"} and all(i.reason == "user" for i in only)
    assert len(only) == sum(n.op_type == "Conv" for n in hybrid.graph.node)
    with pytest.raises(UsageError, match="--keep-fp '\\*/nope/\\*' matches no node"):
        find_islands(hybrid, int8_plan(Target.ONNX).island_rules, keep_fp=("*/nope/*",))


def test_fp16_islands_are_the_overflow_prone_ops(hybrid):
    reasons = {i.reason for i in find_islands(hybrid, int8_plan(Target.ONNX).island_rules, Precision.FP16)}
    assert reasons == {"layernorm", "softmax"}  # matmuls, GELU, stem and head run in fp16 fine


def test_fused_attention_is_an_island(hybrid):
    """ONNX Runtime's rewrites fuse attention into com.microsoft.Attention: it runs in float."""
    from edgekit.rewrite import RewriteReport, apply_rewrites

    fused = apply_rewrites(hybrid, Target.ONNX, RewriteReport())
    attn = [n for n in fused.graph.node if n.op_type == "Attention"]
    assert len(attn) == 2, "ONNX Runtime's rewrite (fuse_attention_ort) no longer fuses the tiny hybrid's 2 blocks"
    r = _by_reason(find_islands(fused, int8_plan(Target.ONNX).island_rules))
    assert {n.name for n in attn} == {i.node for i in r["plugin"]}


def test_qdq_weights_are_per_channel_symmetric(hybrid):
    ranges = {t: (-4.0, 4.0) for n in hybrid.graph.node for t in n.output} | {"input": (-3.0, 3.0)}
    q = quantize_qdq(hybrid, ranges, set())
    inits = {i.name: i for i in q.graph.initializer}
    from onnx import numpy_helper

    conv_dq = [n for n in q.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
               and numpy_helper.to_array(inits[n.input[0]]).ndim == 4]
    assert conv_dq
    for n in conv_dq:
        w = numpy_helper.to_array(inits[n.input[0]])
        scale, zp = numpy_helper.to_array(inits[n.input[1]]), numpy_helper.to_array(inits[n.input[2]])
        assert w.dtype == np.int8 and scale.shape == (w.shape[0],) and not zp.any()  # per output channel, zp 0
    act_q = [n for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert all(numpy_helper.to_array(inits[n.input[2]]).dtype == np.uint8 for n in act_q)  # U8 activations


@needs_unsaturated_int8
def test_matmul_outputs_stay_float_where_a_float_op_reads_them(hybrid, tmp_path):
    """ONNX Runtime recipe: an int8 MatMul / Gemm read by a float island (GELU) writes float (no Q/DQ pair on
    its output) and runs as one int8 kernel; Conv outputs keep their Q (QLinearConv needs it)."""
    import onnxruntime as ort

    from edgekit.quant.qdq import FLOAT_OUTPUT_OPS, QdqRecipe

    islands = {i.node for i in find_islands(hybrid, int8_plan(Target.ONNX).island_rules)}
    ranges = {t: (-4.0, 4.0) for n in hybrid.graph.node for t in n.output} | {"input": (-3.0, 3.0)}
    plain = quantize_qdq(hybrid, ranges, islands, QdqRecipe())
    floated = quantize_qdq(hybrid, ranges, islands, QdqRecipe(float_output_ops=FLOAT_OUTPUT_OPS))

    def fc1_output_quantized(q):
        consumers = {i: n for n in q.graph.node for i in n.input}
        fc1 = [n for n in q.graph.node if n.op_type in FLOAT_OUTPUT_OPS and "/mlp/mlp.0/" in n.name]
        assert fc1, "the tiny hybrid's MLP fc1 (mlp.0) is a MatMul / Gemm"
        return [consumers[n.output[0]].op_type == "QuantizeLinear" for n in fc1]

    assert all(fc1_output_quantized(plain)) and not any(fc1_output_quantized(floated))
    assert quantized_nodes(floated) == quantized_nodes(plain)  # the same layers get int8 inputs
    convs = {n.output[0] for n in floated.graph.node if n.op_type == "Conv" and n.name in quantized_nodes(floated)}
    q_inputs = {n.input[0] for n in floated.graph.node if n.op_type == "QuantizeLinear"}
    assert convs and convs <= q_inputs  # every int8 Conv still writes through a Q
    # ONNX Runtime fuses the float-output MatMuls into int8 kernels writing float: the DequantizeLinear
    # passes after them are gone at run time (the Q was fused into the kernel either way)
    counts = {}
    for name, q in (("plain", plain), ("floated", floated)):
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(tmp_path / f"{name}.onnx")
        ort.InferenceSession(q.SerializeToString(), so, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
        counts[name] = ops.count("DequantizeLinear")
    assert counts["floated"] < counts["plain"], counts
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    ref = ort.InferenceSession(hybrid.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    out = ort.InferenceSession(floated.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    cos = float((ref * out).sum() / np.linalg.norm(ref) / np.linalg.norm(out))
    assert cos > 0.99, cos  # same int8 layers, one rounding fewer: still close to fp32 on random weights


def _resize_model() -> onnx.ModelProto:
    """stem -> Conv a -> Resize(linear) -+-> Add -> Conv c (a decode-head shape)
         -> Conv b -> Resize(nearest) -+"""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
         for n, s in (("w0", (4, 4, 1, 1)), ("wa", (8, 4, 1, 1)), ("wb", (8, 4, 1, 1)), ("wc", (8, 8, 1, 1)))]
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [helper.make_node("Conv", ["input", "w0"], ["x"], name="stem"),
             helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a"),
             helper.make_node("Resize", ["a", "", "scales"], ["ra"], name="resize_linear", mode="linear"),
             helper.make_node("Conv", ["x", "wb"], ["b"], name="conv_b"),
             helper.make_node("Resize", ["b", "", "scales"], ["rb"], name="resize_nearest", mode="nearest"),
             helper.make_node("Add", ["ra", "rb"], ["s"], name="add"),
             helper.make_node("Conv", ["s", "wc"], ["output"], name="conv_c")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8, 16, 16])],
                              initializer=w + [scales])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnxruntime_keeps_a_linear_resize_and_its_producer_float():
    """ONNX Runtime would move the dequantize past a linear Resize and interpolate in uint8 (its slow path):
    for that target the Resize and the int8 layer feeding it are islands; nearest Resize and other targets not."""
    m = _resize_model()
    ort_islands = {i.node: i.reason for i in find_islands(m, int8_plan(Target.ONNX).island_rules, default=True)}
    assert ort_islands.get("conv_a") == "resize" and ort_islands.get("resize_linear") == "resize"
    assert "resize_nearest" not in ort_islands and ort_islands.get("conv_b") != "resize"
    assert not [n for n, r in {i.node: i.reason for i in find_islands(m, int8_plan(Target.OPENVINO).island_rules)}.items() if r == "resize"]
    ranges = {t: (-4.0, 4.0) for n in m.graph.node for t in n.output} | {"input": (-3.0, 3.0)}
    q = quantize_qdq(m, ranges, set(ort_islands))
    producer = {o: n for n in q.graph.node for o in n.output}
    resize = next(n for n in q.graph.node if n.name == "resize_linear")
    assert producer[resize.input[0]].name == "conv_a"  # reads the float Conv output: no DQ to propagate
    assert "conv_a" in float_nodes(q)
