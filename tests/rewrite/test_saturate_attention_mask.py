"""saturate_attention_mask: a constant attention bias's -100 (masked) entries become -1e4, nothing else changes."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from edgekit.rewrite.rules import saturate_attention_mask
from tests.rewrite.harness import assert_same, ops, rewrite

HEADS, N, WINDOWS = 3, 16, 8


def _bias(masked_fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """A relative position bias (a few units) plus a Swin-style shift mask of -100 (the diagonal never masked)."""
    rng = np.random.default_rng(seed)
    bias = rng.standard_normal((WINDOWS, HEADS, N, N)).astype(np.float32)
    mask = (rng.random((WINDOWS, 1, N, N)) < masked_fraction) & ~np.eye(N, dtype=bool)
    return (bias - 100.0 * mask).astype(np.float32)


def _softmax_model(bias: np.ndarray, view: bool = False) -> onnx.ModelProto:
    """softmax(s + bias) @ v, the bias added directly or (``view``) through the (B, nW*h, N, N) view."""
    inits = [numpy_helper.from_array(bias, "bias")]
    if view:
        inits += [numpy_helper.from_array(np.array([-1, WINDOWS * HEADS, N, N], np.int64), "g"),
                  numpy_helper.from_array(np.array([-1, HEADS, N, N], np.int64), "h")]
        inits[0] = numpy_helper.from_array(bias.reshape(1, WINDOWS * HEADS, N, N), "bias")
        nodes = [helper.make_node("Reshape", ["s", "g"], ["sg"]), helper.make_node("Add", ["sg", "bias"], ["b"]),
                 helper.make_node("Reshape", ["b", "h"], ["logits"])]
    else:
        nodes = [helper.make_node("Add", ["s", "bias"], ["logits"])]
    nodes += [helper.make_node("Softmax", ["logits"], ["p"], axis=-1), helper.make_node("MatMul", ["p", "v"], ["y"])]
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("s", f, [WINDOWS, HEADS, N, N]),
                                           helper.make_tensor_value_info("v", f, [WINDOWS, HEADS, N, 32])],
                              [helper.make_tensor_value_info("y", f, [WINDOWS, HEADS, N, 32])], inits)
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                                               ir_version=8))


def _bias_after(model: onnx.ModelProto) -> np.ndarray:
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name.endswith("/saturated"))


def test_masked_entries_become_exact_zeros_with_the_same_output():
    bias = _bias()
    before = _softmax_model(bias)
    after, count, why = rewrite(saturate_attention_mask.rewrite, before)
    assert count == 1 and why == ""
    assert ops(after) == ops(before)
    new = _bias_after(after)
    np.testing.assert_array_equal(new[bias > -60], bias[bias > -60])  # the relative position bias is untouched
    assert (new[bias <= -60] == -1e4).all()
    # masked weights were < e^-90 of the row's largest: below fp32 resolution, so the outputs agree to rounding
    assert_same(before, after, atol=1e-7, rtol=1e-6)


def test_bias_through_the_window_view_and_the_attention_ops():
    after, count, _ = rewrite(saturate_attention_mask.rewrite, _softmax_model(_bias(), view=True))
    assert count == 1 and (_bias_after(after) == -1e4).any()
    rng = np.random.default_rng(1)
    for domain, op_type, inputs, k in (("com.microsoft", "Attention", ["x", "w", "b", "", "", "bias"], 5),
                                        ("edgekit", "WindowAttention", ["q", "k", "v", "bias"], 3)):
        c = 8
        inits = [numpy_helper.from_array(_bias(), "bias"),
                 numpy_helper.from_array(rng.standard_normal((c, 3 * c)).astype(np.float32), "w"),
                 numpy_helper.from_array(np.zeros(3 * c, np.float32), "b")]
        node = helper.make_node(op_type, inputs, ["y"], domain=domain, num_heads=HEADS)
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(i, onnx.TensorProto.FLOAT, None)
                                                for i in ("x", "q", "k", "v")],
                                  [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(domain, 1)],
                                  ir_version=8)
        after, count, _ = rewrite(saturate_attention_mask.rewrite, model)
        assert count == 1
        assert after.graph.node[0].input[k].endswith("/saturated") and (_bias_after(after) == -1e4).any()


def test_left_alone_without_masks_or_with_a_fully_masked_row():
    after, count, why = rewrite(saturate_attention_mask.rewrite, _softmax_model(_bias(masked_fraction=0.0)))
    assert count == 0 and "no constant attention bias with masked entries" in why
    full = _bias()
    full[0, 0, 3, :] = -100.0  # a row whose softmax is decided by the masked values themselves
    after, count, _ = rewrite(saturate_attention_mask.rewrite, _softmax_model(full))
    assert count == 0


def test_it_is_not_slower_on_any_cpu():
    """The reason the rule exists: ONNX Runtime's softmax @ v can run slower on -100-masked logits (subnormal
    weights) than on exact zeros; how much depends on the CPU (5x on this case on an Intel Xeon, little on AMD
    Zen). Whatever this CPU pays, the rewritten graph must not be slower: timed by edgekit's harness
    (interleaved, single-threaded CPU time, an A/A control), its ratio's interval must reach 0.95."""
    from edgekit.engines.timing import compare, interleave

    before = _softmax_model(_bias(masked_fraction=0.7))
    after, _, _ = rewrite(saturate_attention_mask.rewrite, before)
    feeds = {"s": np.random.default_rng(2).standard_normal((WINDOWS, HEADS, N, N)).astype(np.float32) * 3,
             "v": np.random.default_rng(3).standard_normal((WINDOWS, HEADS, N, 32)).astype(np.float32)}
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    masked, saturated = (ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
                         for m in (before, after))
    samples = interleave({"-100 mask": lambda: masked.run(None, feeds), "saturated": lambda: saturated.run(None, feeds)},
                         baseline="-100 mask", rounds=30, per_round=3, warmup=3)
    result = compare(samples, "-100 mask", clock="cpu")
    (row,) = [r for r in result.rows if r.name == "saturated"]
    # Both graphs run the same ops on the same shapes; only the mask's values differ. Where the CPU pays nothing
    # for subnormals (AMD Zen) the true ratio is 1, and a process beside this one on 2 cores moves the interval
    # by a few percent (0.98x [0.96, 1.00] measured with a compile running). What the rule must never do is
    # what it exists against, a subnormal slowdown (5x on an Intel Xeon): an interval wholly below 0.95 fails.
    assert row.ratio.high >= 0.95, f"saturated vs -100 mask: {row.ratio.text()} (A/A {result.noise.text()})"
