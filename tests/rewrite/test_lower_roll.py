"""lower_roll: a roll written as a Gather of a rotated index becomes Slice + Concat."""
import numpy as np
import pytest

from edgekit.rewrite.rules import lower_roll
from tests.rewrite.harness import assert_same, ops, parse, rewrite


def _gather(index: list[int]) -> str:
    return f"""
<ir_version: 8, opset_import: ["" : 17]>
g (float[1,6,5,3] x) => (float[1,6,5,3] y) {{
  i = Constant <value = int64[{len(index)}] {{{', '.join(map(str, index))}}}> ()
  y = Gather <axis = 1> (x, i)
}}
"""


@pytest.mark.parametrize("shift", [1, 3, -2])
def test_rotation_becomes_slice_concat(shift):
    index = list(np.roll(np.arange(6), -shift))
    before = parse(_gather(index))
    after, count, why = rewrite(lower_roll.rewrite, before)
    assert count == 1 and why == ""
    assert ops(after) == {"Slice": 2, "Concat": 1}
    assert_same(before, after, atol=0, rtol=0)  # the same elements copied


def test_permutation_that_is_not_a_roll_is_kept():
    before = parse(_gather([1, 0, 2, 3, 4, 5]))
    after, count, why = rewrite(lower_roll.rewrite, before)
    assert count == 0 and "no roll" in why
    assert ops(after) == {"Gather": 1}


def test_rotation():
    assert lower_roll.rotation(np.array([2, 3, 0, 1]), 4) == 2
    assert lower_roll.rotation(np.array([0, 1, 2, 3]), 4) is None  # identity is not a roll
    assert lower_roll.rotation(np.array([1, 2, 3]), 4) is None  # not the whole axis
