"""A cyclic shift written as a Gather of a rotated index -> ``roll`` as Slice + Concat.

``torch.roll`` exports as two Slices and a Concat per axis (the exporter's own lowering, kept
as is). Code that rolls by indexing (``x[:, idx]`` with ``idx = (arange(n) - s) % n``,
``index_select``, some converters) exports a Gather with a constant index instead, which TensorRT
and CoreML treat as a general gather (no fusion, an index tensor in memory) and which blocks the
window rewrites that look for the Slice/Concat form::

    Gather(x, idx = [s, s+1, ..., n-1, 0, ..., s-1], axis=a)
        =>  Concat(Slice(x, s:n, axis=a), Slice(x, 0:s, axis=a), axis=a)

Matches a 1-D constant index that is a rotation of ``arange(n)`` over the whole (static) axis.

Numerics: the same elements copied, bit-identical.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite.matching import apply_patterns, attr_int, const_array, initializer, static_shape

NAME = "lower_roll"


def rotation(index: np.ndarray, size: int) -> int | None:
    """s when ``index == roll(arange(size), -s)`` (0 < s < size), else None."""
    if index.ndim != 1 or index.size != size:
        return None
    start = int(index[0]) % size
    if start == 0 or not np.array_equal(np.mod(index, size), (np.arange(size) + start) % size):
        return None
    return start


class _GatherRoll(orp.RewriteRuleClassBase):
    def pattern(self, op, x, index):
        return op.Gather(x, index, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context, x, index, out, **_):
        result = orp.MatchResult()
        idx = const_array(index)
        if idx is None:
            return result.fail("the Gather index is not a constant")
        shape = static_shape(x)
        if shape is None:
            return result.fail("the rolled tensor has no static shape")
        axis = attr_int(out.producer(), "axis", 0) % len(shape)
        if rotation(idx, shape[axis]) is None:
            return result.fail(f"the Gather index is not a rotation of the whole axis {axis} ({shape[axis]})")
        return result

    def rewrite(self, op, x, index, out, **_):
        shape = static_shape(x)
        axis = attr_int(out.producer(), "axis", 0) % len(shape)
        start = rotation(const_array(index), shape[axis])

        def ints(value, role):  # one initializer per role: a replacement must not reuse a name
            return initializer(op, np.array([value], np.int64), out, f"roll_{role}")

        split, axes = ints(start, "split"), ints(axis, "axis")
        head = op.Slice(x, split, ints(shape[axis], "end"), axes)
        tail = op.Slice(x, ints(0, "start"), split, axes)
        return op.Concat(head, tail, axis=axis)


RULES = [_GatherRoll.rule()]


def rewrite(model: ir.Model) -> tuple[int, str]:
    return apply_patterns(model, RULES, "no roll written as a Gather (rolls are already Slice + Concat)",
                          report_checks=False)
