"""split_qkv_heads: the rank-5 packed-QKV split becomes a channel Split and rank-4 heads."""
import torch

from edgekit.rewrite.rules import split_qkv_heads
from tests.rewrite.harness import assert_same, export, max_rank, ops, parse, rewrite


class _TimmQKV(torch.nn.Module):
    """timm's ``qkv.reshape(B, N, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)``, then q @ k^T + v-sum."""

    def __init__(self, dim: int = 16, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(dim, 3 * dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return (q @ k.transpose(-2, -1)).sum(-1, keepdim=True) * v


def test_unbind_form():
    torch.manual_seed(0)
    before = export(_TimmQKV(), torch.randn(2, 5, 16))
    assert max_rank(before) == 5
    after, count, why = rewrite(split_qkv_heads.rewrite, before)
    assert count == 1 and why == ""
    assert max_rank(after) == 4
    assert "Squeeze" not in ops(after) and ops(after)["Split"] == 1
    assert_same(before, after, atol=0, rtol=0)  # the same elements in the same places


def test_gather_form():
    before = parse("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,5,24] qkv) => (float[2,4,5,2] q, float[2,4,5,2] k, float[2,4,5,2] v) {
  s = Constant <value = int64[5] {2, 5, 3, 4, 2}> ()
  r = Reshape (qkv, s)
  t = Transpose <perm = [2, 0, 3, 1, 4]> (r)
  i0 = Constant <value = int64 {0}> ()
  i1 = Constant <value = int64 {1}> ()
  i2 = Constant <value = int64 {2}> ()
  q = Gather <axis = 0> (t, i0)
  k = Gather <axis = 0> (t, i1)
  v = Gather <axis = 0> (t, i2)
}
""")
    after, count, _ = rewrite(split_qkv_heads.rewrite, before)
    assert count == 1
    assert ops(after) == {"Split": 1, "Reshape": 3, "Transpose": 3}
    assert_same(before, after, atol=0, rtol=0)


def test_outputs_follow_the_index_not_the_name():
    before = parse("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,5,24] qkv) => (float[2,4,5,2] q, float[2,4,5,2] k, float[2,4,5,2] v) {
  s = Constant <value = int64[5] {2, 5, 3, 4, 2}> ()
  r = Reshape (qkv, s)
  t = Transpose <perm = [2, 0, 3, 1, 4]> (r)
  i0 = Constant <value = int64 {0}> ()
  i1 = Constant <value = int64 {1}> ()
  i2 = Constant <value = int64 {2}> ()
  q = Gather <axis = 0> (t, i1)
  k = Gather <axis = 0> (t, i0)
  v = Gather <axis = 0> (t, i2)
}
""")
    after, count, _ = rewrite(split_qkv_heads.rewrite, before)
    assert count == 1  # "q" holds part 1 and "k" part 0: each output is replaced by the part its index takes
    assert_same(before, after, atol=0, rtol=0)


def test_non_qkv_view_is_reported():
    before = parse("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,5,32] qkv) => (float[2,4,5,2] q, float[2,4,5,2] k, float[2,4,5,2] v) {
  s = Constant <value = int64[5] {2, 5, 4, 4, 2}> ()
  r = Reshape (qkv, s)
  t = Transpose <perm = [2, 0, 3, 1, 4]> (r)
  i0 = Constant <value = int64 {0}> ()
  i1 = Constant <value = int64 {1}> ()
  i2 = Constant <value = int64 {2}> ()
  q = Gather <axis = 0> (t, i0)
  k = Gather <axis = 0> (t, i1)
  v = Gather <axis = 0> (t, i2)
}
""")
    _, count, why = rewrite(split_qkv_heads.rewrite, before)
    assert count == 0 and "not a static (B, N, 3, heads, d)" in why

