"""The per-target pipelines: declared with reasons, one test file per rule, counts in the report."""
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit.config import Target
from edgekit.rewrite import RewriteReport, apply_rewrites
from edgekit.rewrite.registry import rules_for, swaps_for
from tests.fixtures.tiny import tiny_classifier
from tests.rewrite.harness import export, ops, run

HERE = Path(__file__).resolve().parent
RULES_DIR = HERE.parents[1] / "edgekit" / "rewrite" / "rules"


def test_every_rule_and_swap_module_has_its_test_file():
    rules = sorted(p.stem for p in RULES_DIR.glob("*.py") if not p.name.startswith("_"))
    swaps = sorted(p.stem for p in (RULES_DIR.parent / "swaps").glob("*.py") if not p.name.startswith("_"))
    missing = [f"test_{m}.py" for m in rules if not (HERE / f"test_{m}.py").exists()]
    # a swap is tested here (test_swap_<name>.py) or by its target's tests (the CoreML swaps convert there)
    all_tests = "".join(p.read_text() for p in HERE.parent.rglob("test_*.py"))
    missing += [f"test_swap_{m}.py" for m in swaps if not (HERE / f"test_swap_{m}.py").exists() and m not in all_tests]
    assert rules and swaps and not missing, f"modules without a test file: {missing}"


@pytest.mark.parametrize("target", list(Target), ids=lambda t: t.value)
def test_pipeline_is_declared_with_reasons(target):
    rules = rules_for(target)
    names = [r.name for r in rules]
    assert len(names) == len(set(names)), f"{target.value}: a rule listed twice would overwrite its count"
    for entry in (*rules, *swaps_for(target)):
        assert len(entry.reason) > 20, f"{target.value}: {entry.name} has no reason"


# the rules that rewrite the tiny classifier (LayerNorm, GELU, timm-style packed-QKV attention), and how often
APPLIED = {
    Target.ONNX: {"fold_constants": 7, "split_qkv_heads": 1, "remove_redundant_layout": 1, "fuse_gelu": 1,
                  "fuse_attention_ort": 1},
    Target.OPENVINO: {"fold_constants": 7},
    Target.TRT: {"fold_constants": 7, "split_qkv_heads": 1, "remove_redundant_layout": 1},
    Target.COREML: {"fold_constants": 7, "split_qkv_heads": 1, "remove_redundant_layout": 1},
    # ExecuTorch and LiteRT lower the torch model itself: no ONNX rules run for them
    Target.EXECUTORCH: {},
    Target.LITERT: {},
}


@pytest.mark.parametrize("target", list(Target), ids=lambda t: t.value)
def test_apply_rewrites_reports_every_rule_and_keeps_numerics(target):
    model = tiny_classifier().eval()
    x = torch.randn(1, 3, 64, 64)
    before = export(model, x)
    report = RewriteReport()
    after = apply_rewrites(before, target, report)
    assert list(report.rules) == [r.name for r in rules_for(target)]
    assert all(isinstance(n, int) for n in report.rules.values())
    assert {name: n for name, n in report.rules.items() if n} == APPLIED[target]
    for name, count in report.rules.items():
        assert count > 0 or name in report.not_applied, f"{name} applied 0 times without saying why"
    if "split_qkv_heads" in report.rules:
        assert report.rules["split_qkv_heads"] == 1  # the fixture's attention is timm-style (rank-5 qkv)
    if target is not Target.TRT:  # TensorRT plugin nodes have no ONNX Runtime kernel without their functions
        feeds = {"x0": x.numpy()}
        # rules are exact up to fp32 rounding of fused kernels (LayerNorm, GELU, attention)
        np.testing.assert_allclose(run(after, feeds)[0], run(before, feeds)[0], atol=1e-4, rtol=1e-4)
    if "split_qkv_heads" in report.rules:  # the fixture's only rank-5 tensor is its packed qkv view
        assert max(len(v.type.tensor_type.shape.dim) for v in after.graph.value_info) <= 4
    assert ops(after)  # still a graph


def test_report_to_dict_round_trips_into_the_manifest_shape():
    report = RewriteReport(swaps={"s": 1}, rules={"r": 0}, not_applied={"r": "why"})
    assert report.to_dict() == {"swaps": {"s": 1}, "rules": {"r": 0}, "not_applied": {"r": "why"}}


def test_a_precision_leaves_out_its_rules_and_says_why():
    """int8 on ONNX Runtime keeps the QKV projection out of com.microsoft.Attention (so it runs as int8)."""
    from edgekit.config import Precision
    from edgekit.rewrite.registry import skipped_for

    assert "fuse_attention_ort" in skipped_for(Target.ONNX, Precision.INT8)
    assert "fuse_attention_ort" not in [r.name for r in rules_for(Target.ONNX, Precision.INT8)]
    assert [r.name for r in rules_for(Target.ONNX, Precision.FP32)] == [r.name for r in rules_for(Target.ONNX)]
    model = tiny_classifier().eval()
    before = export(model, torch.randn(1, 3, 64, 64))
    fp32, int8 = RewriteReport(), RewriteReport()
    fused = apply_rewrites(before, Target.ONNX, fp32, Precision.FP32)
    plain = apply_rewrites(before, Target.ONNX, int8, Precision.INT8)
    assert fp32.rules["fuse_attention_ort"] == 1 and ops(fused)["com.microsoft::Attention"] == 1
    assert int8.rules["fuse_attention_ort"] == 0 and "com.microsoft::Attention" not in ops(plain)
    assert int8.not_applied["fuse_attention_ort"].startswith("left out for int8: its QKV projection")
    assert list(int8.rules) == list(fp32.rules)  # every rule still reported, in order


def test_a_precision_leaves_out_its_swaps_and_says_why():
    from edgekit.config import Precision
    from edgekit.rewrite import apply_swaps
    from edgekit.rewrite.swaps import linear_attention

    class _Fake(torch.nn.Module):
        pass

    fp32, int8 = RewriteReport(), RewriteReport()
    apply_swaps(_Fake(), Target.ONNX, fp32, Precision.FP32)
    apply_swaps(_Fake(), Target.ONNX, int8, Precision.INT8)
    assert list(fp32.swaps) == list(int8.swaps)  # every swap reported, in order
    assert int8.swaps[linear_attention.NAME] == 0
    assert int8.not_applied[linear_attention.NAME].startswith("left out for int8: the plugin node")
    assert not fp32.not_applied[linear_attention.NAME].startswith("left out")
