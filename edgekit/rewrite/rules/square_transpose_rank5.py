"""A Transpose(0, 2, 1, 3) of a tensor whose axes 1 and 2 have the same size, written at rank 5 (for OpenVINO).

Attention swaps heads and tokens on the way in and out: ``q (B, N, h, d) -> (B, h, N, d)``, and after
``softmax(q k^T) v`` back to (B, N, h, d) before the heads are merged. OpenVINO 2026.4's CPU plugin computes
those swaps wrongly when h == N (> 1), next to the attention's MatMuls: measured on extracted blocks, max
error ~0.4-1.1 on outputs of magnitude 2-4, exact for every h != N tried (replacing the Softmax by its
decomposition does not help: it is not the attention fusion). It failed timm GC ViT-XXT at 64 (2x2 windows,
4 heads, on q and on the output: cosine 0.99989) and MobileNetV4-hybrid-medium at 64 (multi-query attention
on a 2x2 map, 4 heads: cosine 0.94). The same swap with a trailing unit axis is exact::

    x (B, a, a, d) --Transpose(0, 2, 1, 3)-->
        =>  x --Unsqueeze(-1)--> (B, a, a, d, 1) --Transpose(0, 2, 1, 3, 4)--> --Reshape--> (B, a, a, d)

Every such swap is lifted, wherever it is (the failing ones are all next to a MatMul, but which of them
OpenVINO gets wrong depends on what it fuses around them); swaps of unequal axes keep their rank-4 form.
Numerics: the same elements moved, bit-identical.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgekit.rewrite.matching import attr_ints, static_shape

NAME = "square_transpose_rank5"
_SWAP = [0, 2, 1, 3]


def rewrite(model: ir.Model) -> tuple[int, str]:
    count, unequal = 0, 0
    for node in list(model.graph.all_nodes()):
        if node.op_type != "Transpose" or node.domain not in ("", "ai.onnx") or attr_ints(node, "perm") != _SWAP:
            continue
        shape = static_shape(node.inputs[0])
        if shape is None or shape[1] != shape[2] or shape[1] == 1:
            unequal += 1
            continue
        _lift(node, shape)
        count += 1
    if count:
        return count, ""
    if unequal:
        return 0, f"no Transpose(0, 2, 1, 3) of equal static axes 1 and 2 ({unequal} of other shapes)"
    return 0, "no Transpose(0, 2, 1, 3) in the graph"


def _lift(transpose: ir.Node, shape: tuple[int, ...]) -> None:
    graph = transpose.graph
    batch, a, _, d = shape
    name = transpose.name or "square_transpose"
    axis = _initializer(graph, f"{name}/unit_axis", np.array([-1], np.int64))
    target = _initializer(graph, f"{name}/rank4_shape", np.array([batch, a, a, d], np.int64))
    unit = ir.node("Unsqueeze", [transpose.inputs[0], axis], name=f"{name}/unit_axis")
    swap = ir.node("Transpose", unit.outputs, {"perm": [0, 2, 1, 3, 4]}, name=f"{name}/rank5")
    back = ir.node("Reshape", [swap.outputs[0], target], name=f"{name}/rank4")
    ir.convenience.replace_nodes_and_values(graph, transpose, [transpose], [unit, swap, back], transpose.outputs,
                                            back.outputs)


def _initializer(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    value = ir.Value(name=name, shape=ir.Shape(array.shape), type=ir.TensorType(ir.DataType.INT64),
                     const_value=ir.tensor(array, name=name))
    graph.register_initializer(value)
    return value
