"""lower_window_rank: rank-6 window partition / reverse becomes the same copy at rank 4."""
import pytest

from edgekit.rewrite.rules import lower_window_rank
from tests.rewrite.harness import assert_same, max_rank, ops, parse, rewrite

# timm's window_partition on (1, 14, 14, 8) with 7x7 windows, then window_reverse
PARTITION_REVERSE = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1,14,14,8] x) => (float[1,14,14,8] y) {
  s6 = Constant <value = int64[6] {1, 2, 7, 2, 7, 8}> ()
  v = Reshape (x, s6)
  t = Transpose <perm = [0, 1, 3, 2, 4, 5]> (v)
  s3 = Constant <value = int64[3] {-1, 49, 8}> ()
  w = Reshape (t, s3)
  a = Relu (w)
  r6 = Constant <value = int64[6] {-1, 2, 2, 7, 7, 8}> ()
  u = Reshape (a, r6)
  ut = Transpose <perm = [0, 1, 3, 2, 4, 5]> (u)
  s4 = Constant <value = int64[4] {-1, 14, 14, 8}> ()
  y = Reshape (ut, s4)
}
"""


def test_lowers_partition_and_reverse_to_rank_4():
    before = parse(PARTITION_REVERSE)
    assert max_rank(before) == 6
    after, count, why = rewrite(lower_window_rank.rewrite, before)
    assert count == 2 and why == ""
    assert max_rank(after) == 4
    assert ops(after) == {"Reshape": 4, "Transpose": 2, "Relu": 1}
    assert_same(before, after, atol=0, rtol=0)  # the same permutation of the same bytes


@pytest.mark.parametrize("shape,perm,expected", [
    ((1, 8, 7, 8, 7, 96), [0, 1, 3, 2, 4, 5], ([8, 7, 8, 672], [0, 2, 1, 3])),  # window partition
    ((1, 8, 8, 7, 7, 96), [0, 1, 3, 2, 4, 5], ([8, 8, 7, 672], [0, 2, 1, 3])),  # window reverse
    ((1, 28, 2, 28, 2, 96), [0, 1, 3, 4, 2, 5], ([28, 2, 56, 96], [0, 2, 1, 3])),  # patch merging
    ((2, 3, 4, 5, 6), [4, 3, 2, 1, 0], ([2, 3, 4, 5, 6], [4, 3, 2, 1, 0])),  # nothing to merge
])
def test_merged_layout(shape, perm, expected):
    assert lower_window_rank.merged_layout(shape, perm) == expected


def test_rank_4_is_left_alone():
    before = parse("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[1,14,14,8] x) => (float[4,49,8] y) {
  s = Constant <value = int64[4] {2, 7, 2, 56}> ()
  v = Reshape (x, s)
  t = Transpose <perm = [0, 2, 1, 3]> (v)
  s3 = Constant <value = int64[3] {-1, 49, 8}> ()
  y = Reshape (t, s3)
}
""")
    _, count, why = rewrite(lower_window_rank.rewrite, before)
    assert count == 0 and "already rank 4" in why
