"""Fold shape arithmetic and constant subgraphs (bias-table gathers) into initializers.

An exporter traces ``x.shape`` arithmetic (window counts, pad amounts: Shape -> Gather -> Div/Mod ->
Concat -> Reshape) into the graph; when the input size is fixed, all of it is constant. onnxslim
folds part of it and stops where shape inference lost the static dims (a Reshape whose target is
computed), which leaves every later shape symbolic and every later rule blind. onnxscript's
constant folder, alternated with ONNX shape inference until nothing changes, folds it all::

    Shape(x) -> Gather(0) -> Unsqueeze -> Concat(.., [49], [3], [-1]) -> Reshape(y, .)
        =>  Reshape(y, [4, 49, 3, 12, -1])

Count: nodes removed. Numerics: folding evaluates the same ops once, ahead of time (bit-identical).
"""
from __future__ import annotations

import onnx_ir as ir

NAME = "fold_constants"
_MAX_ROUNDS = 8  # each round unlocks the next level of shape arithmetic; timm Swin-T needs 6


def rewrite(model: ir.Model) -> tuple[int, str]:
    import onnxscript.optimizer as optimizer

    from edgekit.rewrite.pipeline import infer_shapes

    before = _count(model)
    previous = before
    for _ in range(_MAX_ROUNDS):
        optimizer.fold_constants(model)
        optimizer.remove_unused_nodes(model)
        infer_shapes(model)
        now = _count(model)
        if now == previous:
            break
        previous = now
    removed = before - _count(model)
    return removed, "" if removed else "no foldable constant or shape arithmetic left (the simplifier folded it)"


def _count(model: ir.Model) -> int:
    return sum(1 for _ in model.graph.all_nodes())
