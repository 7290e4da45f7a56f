"""fuse_gelu: the exporter's Erf / tanh GELU becomes one node in the target's domain."""
import pytest
import torch

from edgekit.rewrite.rules import fuse_gelu
from tests.rewrite.harness import assert_same, export, ops, parse, rewrite


class _TwoGelus(torch.nn.Module):
    def __init__(self, approximate: str):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return torch.nn.functional.gelu(x, approximate=self.approximate) + torch.nn.functional.gelu(
            x * 2.0, approximate=self.approximate)


@pytest.mark.parametrize("approximate,node", [("none", "com.microsoft::Gelu"), ("tanh", "com.microsoft::FastGelu")])
def test_ort_contrib_gelu(approximate, node):
    before = export(_TwoGelus(approximate), torch.randn(2, 16))
    after, count, why = rewrite(fuse_gelu.for_domain("com.microsoft"), before)
    assert count == 2 and why == ""
    assert ops(after) == {node: 2, "Mul": 1, "Add": 1}
    # ORT's Gelu evaluates the same erf expression; FastGelu the same tanh formula: rounding only
    assert_same(before, after, atol=1e-5, rtol=1e-5)


def test_onnx_gelu_needs_opset_20():
    before = export(_TwoGelus("none"), torch.randn(2, 16))  # opset 17
    after, count, why = rewrite(fuse_gelu.for_domain(""), before)
    assert count == 0 and "needs opset 20" in why
    assert ops(after)["Erf"] == 2


def test_onnx_gelu_at_opset_20():
    before = parse("""
<ir_version: 9, opset_import: ["" : 20]>
g (float[2,16] x) => (float[2,16] y) {
  c = Constant <value = float {0.70710678}> ()
  a = Mul (x, c)
  e = Erf (a)
  one = Constant <value = float {1.0}> ()
  p = Add (one, e)
  half = Constant <value = float {0.5}> ()
  h = Mul (x, half)
  y = Mul (h, p)
}
""")
    after, count, _ = rewrite(fuse_gelu.for_domain(""), before)
    assert count == 1
    assert ops(after) == {"Gelu": 1}
    assert_same(before, after, atol=1e-5, rtol=1e-5)  # ONNX Gelu(approximate="none") is the erf formula


def test_wrong_constant_is_reported():
    before = export(torch.nn.Sequential(torch.nn.Linear(4, 4)), torch.randn(2, 4))
    _, count, why = rewrite(fuse_gelu.for_domain("com.microsoft"), before)
    assert count == 0 and "no decomposed GELU" in why
