"""fuse_attention_ort: QKV projection + softmax attention -> one com.microsoft.Attention."""
import onnx_ir as ir
import pytest
import torch

from edgekit.stages.onnx_export import export_onnx
from edgekit.rewrite.rules import fuse_attention_ort, remove_redundant_layout, split_qkv_heads
from tests.fixtures.tiny import _Attention
from tests.rewrite.harness import assert_same, export, ops, rewrite
from tests.rewrite.modules import PlainAttention, ReducedAttention, zoo_window_attention


@pytest.mark.parametrize("shifted", [True, False], ids=["shifted-window-bias", "shared-bias"])
def test_zoo_window_attention_simplified_export(shifted):
    before = export_onnx(zoo_window_attention(shifted), (4, 9, 16)).model  # onnxslim's Gemm form
    after, count, why = rewrite(fuse_attention_ort.rewrite, before)
    assert count == 1 and why == ""
    assert ops(after)["com.microsoft::Attention"] == 1
    assert "Softmax" not in ops(after) and "Split" not in ops(after)
    # same fp32 math, another summation order inside ORT's kernel
    assert_same(before, after, atol=1e-5, rtol=1e-5)


def test_plain_attention_scale_after_matmul():
    torch.manual_seed(0)
    before = export(PlainAttention(), torch.randn(2, 6, 16))  # MatMul + Add projection, Mul scale on the logits
    after, count, _ = rewrite(fuse_attention_ort.rewrite, before)
    assert count == 1 and ops(after)["com.microsoft::Attention"] == 1
    assert_same(before, after, atol=1e-5, rtol=1e-5)


def test_timm_style_after_split_qkv_heads():
    torch.manual_seed(0)
    before = export(_Attention(16, heads=2), torch.randn(1, 16, 3, 3))
    prepared, _, _ = rewrite(lambda m: _chain(m, split_qkv_heads.rewrite, remove_redundant_layout.rewrite), before)
    after, count, _ = rewrite(fuse_attention_ort.rewrite, prepared)
    assert count == 1
    assert_same(before, after, atol=1e-5, rtol=1e-5)


def test_separate_kv_projection_is_left_decomposed():
    torch.manual_seed(0)
    before = export(ReducedAttention(), torch.randn(1, 8, 16))
    after, count, why = rewrite(fuse_attention_ort.rewrite, before)
    assert count == 0 and "packed QKV" in why
    assert ops(after)["Softmax"] == 1


def _chain(model: ir.Model, *rewrites) -> tuple[int, str]:
    return sum(r(model)[0] for r in rewrites), ""
