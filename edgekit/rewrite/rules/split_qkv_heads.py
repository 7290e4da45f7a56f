"""A packed QKV projection split into q, k, v first, then into heads, at rank 4.

timm (and most ViT code) splits the fused QKV projection through a rank-5 view::

    qkv (B, N, 3C) --Reshape--> (B, N, 3, h, d) --Transpose(2,0,3,1,4)--> (3, B, h, N, d)
        --Split(axis 0) | Gather 0/1/2--> --Squeeze--> q, k, v (B, h, N, d)

Splitting the channels first keeps every tensor at rank <= 4 (CoreML's limit is 5), is one copy
less, and puts q, k and v in the form the attention fusions match::

    qkv --Split(axis -1, [C, C, C])--> each --Reshape--> (B, N, h, d) --Transpose(0,2,1,3)--> (B, h, N, d)

Numerics: the same elements in the same places, bit-identical.

Matched by walking from each Transpose(2, 0, 3, 1, 4) to its consumers, not by onnxscript's pattern
matcher: a pattern with three outputs goes through its generic matcher, which tried every node of the
graph (5 s on timm MaxViT-pico, for no match; this walk takes milliseconds).
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgekit.rewrite.matching import attr_int, attr_ints, const_array, const_ints, static_shape

NAME = "split_qkv_heads"
_PERM = [2, 0, 3, 1, 4]
_ABSENT = "no rank-5 packed QKV split (Reshape (B, N, 3, h, d) -> Transpose) in the graph"


def rewrite(model: ir.Model) -> tuple[int, str]:
    count, reasons = 0, []
    for transpose in list(model.graph.all_nodes()):
        if transpose.op_type != "Transpose" or transpose.domain not in ("", "ai.onnx"):
            continue
        if attr_ints(transpose, "perm") != _PERM:
            continue
        found = _match(transpose)
        if isinstance(found, str):
            reasons.append(f"{found} at {transpose.name or 'Transpose'}")
            continue
        _split(transpose.graph, *found)
        count += 1
    if count or not reasons:
        return count, "" if count else _ABSENT
    more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
    return 0, reasons[0] + more


def _match(transpose: ir.Node):
    """(reshape, transpose, nodes unpacking q/k/v, their outputs in q, k, v order), or why it is not a match."""
    packed = transpose.inputs[0]
    reshape = packed.producer() if packed is not None else None
    if reshape is None or reshape.op_type != "Reshape" or reshape.domain not in ("", "ai.onnx"):
        return "the transposed QKV view is not a Reshape"
    unpack = _unpack(transpose)
    if isinstance(unpack, str):
        return unpack
    shape = static_shape(packed)
    if shape is None:
        return "the QKV view has no static shape (a dynamic batch keeps it symbolic)"
    if len(shape) != 5 or shape[2] != 3:
        return f"the QKV view {shape} is not a static (B, N, 3, heads, d)"
    qkv_shape = static_shape(reshape.inputs[0])
    if qkv_shape is None or qkv_shape[-1] != 3 * shape[3] * shape[4]:
        return "the QKV projection has no static (..., 3C) shape"
    return (reshape, transpose, *unpack)


def _unpack(transpose: ir.Node):
    """How q, k, v are taken from the (3, B, h, N, d) tensor: (nodes, outputs in q, k, v order) or why not.

    ``Split(axis 0)`` into three, each ``Squeeze``d on axis 0 (torch's ``unbind``), or three
    ``Gather(axis 0)`` of the scalar indices 0, 1, 2 (``qkv[0], qkv[1], qkv[2]``)."""
    users = [u for u, _ in transpose.outputs[0].uses()]
    if transpose.outputs[0].is_graph_output():
        return "the (3, B, h, N, d) tensor is a graph output"
    if len(users) == 1 and users[0].op_type == "Split":
        split = users[0]
        sizes = const_ints(split.inputs[1]) if len(split.inputs) > 1 and split.inputs[1] is not None else None
        if attr_int(split, "axis", 0) != 0 or len(split.outputs) != 3 or sizes not in (None, [1, 1, 1]):
            return "q, k, v are not split from axis 0 in three equal parts"
        nodes, outputs = [split], []
        for part in split.outputs:
            squeezes = [u for u, _ in part.uses()]
            if part.is_graph_output() or len(squeezes) != 1 or squeezes[0].op_type != "Squeeze":
                return "a split part is not only squeezed"
            squeeze = squeezes[0]
            if len(squeeze.inputs) < 2 or const_ints(squeeze.inputs[1]) != [0]:
                return "a split part is not squeezed on axis 0"
            nodes.append(squeeze)
            outputs.append(squeeze.outputs[0])
        return nodes, outputs
    if len(users) == 3 and all(u.op_type == "Gather" for u in users):
        taken = {}
        for gather in users:
            index = const_array(gather.inputs[1])
            if attr_int(gather, "axis", 0) != 0 or index is None or index.ndim != 0 or index.dtype.kind not in "iu":
                return "q, k, v are not gathered from axis 0 with scalar indices"
            taken[int(index)] = gather
        if sorted(taken) != [0, 1, 2]:
            return f"q, k, v are taken with indices {sorted(taken)}, not [0, 1, 2]"
        return [taken[i] for i in range(3)], [taken[i].outputs[0] for i in range(3)]
    return "q, k, v are not unpacked by one Split + Squeezes or three Gathers"


def _split(graph: ir.Graph, reshape: ir.Node, transpose: ir.Node, unpack_nodes: list[ir.Node],
           outputs: list[ir.Value]) -> None:
    """qkv --Split(axis -1)--> each --Reshape (B, N, h, d)--> --Transpose(0, 2, 1, 3)--> replaces q, k, v."""
    packed = reshape.outputs[0]
    batch, tokens, _, heads, dim = static_shape(packed)
    sizes = _initializer(graph, f"{packed.name}/qkv_sizes", np.array([heads * dim] * 3, np.int64))
    head_shape = _initializer(graph, f"{packed.name}/head_shape", np.array([batch, tokens, heads, dim], np.int64))
    split = ir.node("Split", [reshape.inputs[0], sizes], {"axis": -1}, num_outputs=3, name=f"{transpose.name}/split")
    new_nodes, new_outputs = [split], []
    for k, part in enumerate(split.outputs):
        heads_view = ir.node("Reshape", [part, head_shape], name=f"{transpose.name}/heads_{k}")
        heads_first = ir.node("Transpose", heads_view.outputs, {"perm": [0, 2, 1, 3]},
                              name=f"{transpose.name}/heads_first_{k}")
        new_nodes += [heads_view, heads_first]
        new_outputs.append(heads_first.outputs[0])
    old_nodes = [transpose, *unpack_nodes]
    if len(packed.uses()) == 1 and not packed.is_graph_output():  # the Transpose was the view's only user
        old_nodes.insert(0, reshape)
    ir.convenience.replace_nodes_and_values(graph, transpose, old_nodes, new_nodes, outputs, new_outputs)


def _initializer(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    value = ir.Value(name=name, shape=ir.Shape(array.shape), type=ir.TensorType(ir.DataType.INT64),
                     const_value=ir.tensor(array, name=name))
    graph.register_initializer(value)
    return value
