"""Precision islands: which nodes stay float, why, and that the QDQ graph really leaves them float."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekit.config import Precision, Target
from edgekit.errors import UsageError
from edgekit.onnx_export import export_onnx, prepare_for_deploy
from edgekit.quant.graph import GraphView
from edgekit.quant.islands import find_islands
from edgekit.quant.qdq import float_nodes, quantize_qdq, quantized_nodes


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
    r = _by_reason(find_islands(hybrid, Target.ONNX))
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
    islands = find_islands(evit, Target.OPENVINO)
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
    islands = find_islands(hybrid, Target.ONNX)
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
    user = [i for i in find_islands(hybrid, Target.ONNX, keep_fp=("*/blocks.1/*",)) if i.reason == "user"]
    assert user and all("/blocks.1/" in i.node for i in user)
    # op: patterns, and islands off: only what the user asked for
    only = find_islands(hybrid, Target.ONNX, keep_fp=("op:Conv",), default=False)
    assert {i.op_type for i in only} == {"Conv"} and all(i.reason == "user" for i in only)
    assert len(only) == sum(n.op_type == "Conv" for n in hybrid.graph.node)
    with pytest.raises(UsageError, match="--keep-fp '\\*/nope/\\*' matches no node"):
        find_islands(hybrid, Target.ONNX, keep_fp=("*/nope/*",))


def test_fp16_islands_are_the_overflow_prone_ops(hybrid):
    reasons = {i.reason for i in find_islands(hybrid, Target.ONNX, Precision.FP16)}
    assert reasons == {"layernorm", "softmax"}  # matmuls, GELU, stem and head run in fp16 fine


def test_fused_attention_is_an_island(hybrid):
    """ONNX Runtime's rewrites fuse attention into com.microsoft.Attention: it runs in float."""
    from edgekit.rewrite import RewriteReport, apply_rewrites

    fused = apply_rewrites(hybrid, Target.ONNX, RewriteReport())
    attn = [n for n in fused.graph.node if n.op_type == "Attention"]
    if not attn:
        pytest.skip("the ONNX Runtime rewrites did not fuse this attention block")
    r = _by_reason(find_islands(fused, Target.ONNX))
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
