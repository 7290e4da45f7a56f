"""Window partition / reverse (and patch merging) expressed with tensors of rank <= 4.

timm's Swin partitions windows through a rank-6 view::

    (B, H, W, C) --Reshape--> (B, H/wh, wh, W/ww, ww, C) --Transpose(0,1,3,2,4,5)--> --Reshape--> (B*nW, wh*ww, C)

A Transpose only moves *blocks* of axes; axes that stay adjacent and in order on both sides (here
(B, H/wh), and (ww, C)) are one axis as far as memory is concerned. Merging them gives the same
bytes through a rank-4 view, which CoreML requires (rank <= 5) and which every runtime transposes
with a simpler loop::

    (B, H, W, C) --Reshape--> (B*H/wh, wh, W/ww, ww*C) --Transpose(0,2,1,3)--> --Reshape--> (B*nW, wh*ww, C)

Size-1 axes are dropped first (they do not affect memory order). Matches Reshape -> Transpose ->
Reshape whose middle rank exceeds 4 and can be lowered.

Numerics: the same permutation of the same bytes, bit-identical.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite.matching import apply_patterns, attr_ints, initializer, static_shape

NAME = "lower_window_rank"
MAX_RANK = 4


def merged_layout(shape: tuple[int, ...], perm: list[int]) -> tuple[list[int], list[int]]:
    """The lowest-rank (shape, perm) that moves the same bytes as Transpose(perm) on ``shape``."""
    keep = [i for i, d in enumerate(shape) if d != 1]
    renumber = {old: new for new, old in enumerate(keep)}
    shape = [shape[i] for i in keep]
    perm = [renumber[p] for p in perm if p in renumber]
    groups: list[list[int]] = []  # runs of input axes, in output order
    for p in perm:
        if groups and groups[-1][-1] + 1 == p:
            groups[-1].append(p)
        else:
            groups.append([p])
    by_input = sorted(range(len(groups)), key=lambda g: groups[g][0])
    new_shape = [int(np.prod([shape[a] for a in groups[g]])) for g in by_input]
    position = {g: i for i, g in enumerate(by_input)}
    new_perm = [position[g] for g in range(len(groups))]
    return new_shape, new_perm


class _LowerRank(orp.RewriteRuleClassBase):
    def pattern(self, op, x, shape, out_shape):
        mid = op.Reshape(x, shape, _allow_other_attributes=True, _outputs=["mid"])
        moved = op.Transpose(mid, _allow_other_attributes=True, _outputs=["moved"])
        return op.Reshape(moved, out_shape, _allow_other_attributes=True)

    def check(self, context, x, mid, moved, **_):
        result = orp.MatchResult()
        shape = static_shape(mid)
        if shape is None:
            return result.fail("the Reshape before the Transpose has no static shape")
        if len(shape) <= MAX_RANK:
            return result.fail(f"the Reshape-Transpose-Reshape is already rank {len(shape)} (<= {MAX_RANK})")
        new_shape, _ = merged_layout(shape, attr_ints(moved.producer(), "perm"))
        if len(new_shape) >= len(shape):
            return result.fail(f"the Transpose of rank {len(shape)} moves no mergeable block of axes")
        return result

    def rewrite(self, op, x, out_shape, mid, moved, **_):
        new_shape, new_perm = merged_layout(static_shape(mid), attr_ints(moved.producer(), "perm"))
        lowered = op.Reshape(x, initializer(op, np.array(new_shape, np.int64), mid, "rank_lowered_shape"))
        if new_perm != sorted(new_perm):
            lowered = op.Transpose(lowered, perm=new_perm)
        return op.Reshape(lowered, out_shape)


RULES = [_LowerRank.rule()]


def rewrite(model: ir.Model) -> tuple[int, str]:
    return apply_patterns(model, RULES, f"no Reshape-Transpose-Reshape above rank {MAX_RANK} in the graph")
