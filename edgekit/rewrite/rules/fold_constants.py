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

import numpy as np
import onnx_ir as ir

NAME = "fold_constants"
_SMALL = 4096  # elements: shape arithmetic, not data
_MAX_ROUNDS = 8  # each round unlocks the next level of shape arithmetic; timm Swin-T needs 6


def rewrite(model: ir.Model) -> tuple[int, str]:
    import onnxscript.optimizer as optimizer

    from edgekit.rewrite.ir_passes import infer_shapes

    before = _count(model)
    previous = before
    for _ in range(_MAX_ROUNDS):
        optimizer.fold_constants(model, should_fold=_small_constant_of_shape)
        optimizer.remove_unused_nodes(model)
        infer_shapes(model)
        now = _count(model)
        if now == previous:
            break
        previous = now
    removed = before - _count(model)
    return removed, "" if removed else "no foldable constant or shape arithmetic left (the simplifier folded it)"


def _small_constant_of_shape(node: ir.Node) -> bool | None:
    """Fold a small ConstantOfShape (the exporter builds Pad amounts with one); None: onnxscript's default.

    onnxscript keeps every ConstantOfShape so that a model never grows by a large filled tensor;
    a few-element one is only shape arithmetic.
    """
    if node.op_type != "ConstantOfShape" or node.domain not in ("", "ai.onnx"):
        return None
    shape = node.inputs[0].const_value if node.inputs and node.inputs[0] is not None else None
    return shape is not None and int(np.prod(shape.numpy())) <= _SMALL


def _count(model: ir.Model) -> int:
    return sum(1 for _ in model.graph.all_nodes())
