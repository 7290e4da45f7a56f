"""remove_redundant_layout: inverse Transposes, Reshape chains and no-op Reshape/Slice/Pad disappear."""
from edgekit.rewrite.rules import remove_redundant_layout
from tests.rewrite.harness import assert_same, ops, parse, rewrite

GLUE = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3,4,5] x) => (float[2,3,4,5] y) {
  t1 = Transpose <perm = [0, 2, 3, 1]> (x)
  t2 = Transpose <perm = [0, 3, 1, 2]> (t1)
  s1 = Constant <value = int64[2] {6, 20}> ()
  r1 = Reshape (t2, s1)
  s2 = Constant <value = int64[4] {2, 3, 4, 5}> ()
  r2 = Reshape (r1, s2)
  same = Reshape (r2, s2)
  pads = Constant <value = int64[8] {0, 0, 0, 0, 0, 0, 0, 0}> ()
  p = Pad (same, pads)
  st = Constant <value = int64[1] {0}> ()
  en = Constant <value = int64[1] {4}> ()
  ax = Constant <value = int64[1] {2}> ()
  sl = Slice (p, st, en, ax)
  y = Relu (sl)
}
"""


def test_removes_layout_glue():
    before = parse(GLUE)
    after, count, why = rewrite(remove_redundant_layout.rewrite, before)
    assert count >= 5 and why == ""  # transpose pair, reshape pair (+ the identity it leaves), pad, slice
    assert ops(after) == {"Relu": 1}
    assert_same(before, after, atol=0, rtol=0)  # pure data movement removed: bit-identical


def test_keeps_real_layout_changes():
    before = parse("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3,4] x) => (float[2,4,3] y) { y = Transpose <perm = [0, 2, 1]> (x) }
""")
    after, count, why = rewrite(remove_redundant_layout.rewrite, before)
    assert count == 0 and "no redundant" in why
    assert ops(after) == {"Transpose": 1}
