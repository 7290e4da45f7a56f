"""fuse_window_attention: windowed softmax attention with a bias -> one edgekit::WindowAttention node."""
import numpy as np
import pytest
import torch

from edgekit.stages.onnx_export import export_onnx
from edgekit.plugins import attach_functions
from edgekit.rewrite.rules import fuse_window_attention
from tests.rewrite.harness import assert_same, export, feeds_for, ops, rewrite, run
from tests.rewrite.modules import PlainAttention, zoo_window_attention


@pytest.mark.parametrize("shifted", [True, False], ids=["shifted-window-bias", "shared-bias"])
def test_zoo_window_attention(shifted):
    before = export_onnx(zoo_window_attention(shifted), (4, 9, 16)).model
    after, count, why = rewrite(fuse_window_attention.rewrite, before)
    assert count == 1 and why == ""
    assert ops(after)["edgekit::WindowAttention"] == 1 and "Softmax" not in ops(after)
    node = next(n for n in after.graph.node if n.op_type == "WindowAttention")
    bias = next(i for i in after.graph.initializer if i.name == node.input[3])
    assert list(bias.dims) == [4 if shifted else 1, 2, 9, 9]  # (nW, heads, N, N)
    # ONNX Runtime runs the plugin's function body: the same fp32 math, regrouped
    assert_same(before, attach_functions(after), atol=1e-5, rtol=1e-5)


def test_matches_the_plugin_reference():
    from edgekit.plugins.window_attention.reference import window_attention as reference

    module = zoo_window_attention(shifted=True)
    before = export_onnx(module, (4, 9, 16)).model
    after, _, _ = rewrite(fuse_window_attention.rewrite, before)
    feeds = feeds_for(before)
    x = torch.from_numpy(feeds[before.graph.input[0].name])
    with torch.no_grad():  # the module with its core replaced by the plugin's reference
        q, k, v = (t.reshape(4, 9, 2, 8).transpose(1, 2) for t in module.qkv(x).split(16, -1))
        core = reference(q, k, v, module.attn_bias, module.scale)
        expected = module.proj(core.transpose(1, 2).reshape(4, 9, 16)).numpy()
    np.testing.assert_allclose(run(attach_functions(after), feeds)[0], expected, atol=1e-5, rtol=1e-5)


def test_attention_without_bias_is_left_to_tensorrt():
    torch.manual_seed(0)
    before = export(PlainAttention(), torch.randn(2, 6, 16))
    after, count, why = rewrite(fuse_window_attention.rewrite, before)
    assert count == 0 and "without" not in why and "plain attention" in why
    assert ops(after)["Softmax"] == 1
