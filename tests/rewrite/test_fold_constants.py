"""fold_constants: traced shape arithmetic on a static input becomes constant Reshape targets."""
from edgekit.rewrite.rules import fold_constants
from tests.rewrite.harness import assert_same, ops, parse, rewrite

# (B, N, C) -> Reshape to (B, N, 2, C/2) with the target computed from Shape(x), as a traced
# ``x.reshape(x.shape[0], x.shape[1], 2, -1)`` exports
SHAPE_ARITHMETIC = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,6,8] x) => (float[2,6,2,4] y) {
  s = Shape (x)
  i0 = Constant <value = int64 {0}> ()
  i1 = Constant <value = int64 {1}> ()
  b = Gather <axis = 0> (s, i0)
  n = Gather <axis = 0> (s, i1)
  ax = Constant <value = int64[1] {0}> ()
  b1 = Unsqueeze (b, ax)
  n1 = Unsqueeze (n, ax)
  two = Constant <value = int64[1] {2}> ()
  m1 = Constant <value = int64[1] {-1}> ()
  target = Concat <axis = 0> (b1, n1, two, m1)
  y = Reshape (x, target)
}
"""


def test_folds_shape_arithmetic_into_a_constant_reshape():
    before = parse(SHAPE_ARITHMETIC)
    after, count, why = rewrite(fold_constants.rewrite, before)
    assert count == 11 and why == ""  # everything but the Reshape
    assert ops(after) == {"Reshape": 1}
    assert_same(before, after, atol=0, rtol=0)  # folding evaluates the same ops ahead of time: bit-identical


def test_nothing_to_fold_says_so():
    before = parse("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3] x) => (float[2,3] y) { y = Relu (x) }
""")
    after, count, why = rewrite(fold_constants.rewrite, before)
    assert count == 0 and "no foldable" in why
    assert ops(after) == {"Relu": 1}
