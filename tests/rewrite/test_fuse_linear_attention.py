"""fuse_linear_attention: ReLU linear attention (both normaliser forms) -> one edgekit::LinearAttention."""
import pytest
import torch

from edgekit.models.efficientvit import LiteMLA
from edgekit.stages.onnx_export import export_onnx
from edgekit.plugins import attach_functions
from edgekit.rewrite.rules import fold_constants, fuse_linear_attention
from tests.rewrite.harness import assert_same, export, ops, rewrite
from tests.rewrite.modules import TimmLinearAttention


def test_zoo_lite_mla():
    torch.manual_seed(0)
    before = export_onnx(LiteMLA(16, 16, head_dim=8).eval(), (1, 16, 5, 5)).model  # simplified: static chunk sizes
    after, count, why = rewrite(fuse_linear_attention.rewrite, before)
    assert count == 1 and why == ""
    assert ops(after)["edgekit::LinearAttention"] == 1 and "ReduceSum" not in ops(after)
    # the function body is the reference's sum form in fp32
    assert_same(before, attach_functions(after), atol=1e-5, rtol=1e-5)


def test_timm_padded_normaliser():
    qkv = [torch.randn(1, 2, 7, 4) for _ in range(3)]
    before = export(TimmLinearAttention(), *qkv)
    folded, _, _ = rewrite(fold_constants.rewrite, before)  # the exporter computes the pad amounts; fold first
    after, count, _ = rewrite(fuse_linear_attention.rewrite, folded)
    assert count == 1
    assert ops(after) == {"edgekit::LinearAttention": 1}
    # the padded column computes the normaliser inside the product; the plugin sums it apart: rounding only
    assert_same(before, attach_functions(after), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("eps", [1e-8])
def test_eps_below_the_plugin_minimum_is_reported(eps):
    before = export(TimmLinearAttention(eps), *[torch.randn(1, 2, 7, 4) for _ in range(3)])
    folded, _, _ = rewrite(fold_constants.rewrite, before)
    after, count, why = rewrite(fuse_linear_attention.rewrite, folded)
    assert count == 0 and "below the plugin's minimum" in why
    assert "Relu" in ops(after)
