"""A chain of pure data movement (roll + window partition, window reverse + roll back) -> one Gather.

A shifted-window block moves its tokens four times before any arithmetic::

    (B, H, W, C) --Slice,Slice,Concat (roll rows)--Slice,Slice,Concat (roll columns)-->
        --Reshape--Transpose--Reshape--> (B*nW*N, C) windows          (and the reverse after attention)

Every one of those nodes only moves whole C-vectors ("rows"), so the chain is one fixed permutation
of rows, known ahead of time. Running the chain once on an index tensor gives it; one Gather then
does all the moving in one pass::

    x --Reshape (-1, C)--> --Gather(rows, axis 0)--> --Reshape--> (the chain's output shape)

Measured on this CPU (Swin-T stage 1, 1x56x56x96, roll + partition): 458 -> 193 us in ONNX Runtime,
457 -> 224 us in OpenVINO; a partition alone (one Transpose) is as fast either way, so only chains
with at least two copying nodes (Transpose, Slice, Concat) are replaced.

It is an onnx-ir pass rather than a pattern: the chain has no fixed length. Static shapes only.
Numerics: the same elements copied, bit-identical.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from edgekit.rewrite.matching import static_shape

NAME = "fuse_window_permutation"
MOVES = {"Reshape", "Transpose", "Slice", "Concat", "Squeeze", "Unsqueeze", "Flatten"}
COPIES = {"Transpose", "Slice", "Concat"}  # nodes that copy in every runtime (Reshape/Squeeze are views)
_MIN_COPIES = 2


def rewrite(model: ir.Model) -> tuple[int, str]:
    graph = model.graph
    count = 0
    done: set[int] = set()
    for node in list(graph):
        if not _is_move(node) or id(node) in done or not _is_sink(node):
            continue
        region = _region(node)
        if region is None:
            continue
        nodes, source = region
        done.update(id(n) for n in nodes)
        if sum(n.op_type in COPIES for n in nodes) < _MIN_COPIES:
            continue
        rows = _row_permutation(nodes, source, node.outputs[0])
        if rows is None:
            continue
        _replace(graph, nodes, source, node, rows)
        count += 1
    return count, "" if count else "no chain of two or more copying layout nodes that only permutes C-vectors"


def _is_move(node: ir.Node) -> bool:
    return node.op_type in MOVES and node.domain in ("", "ai.onnx") and len(node.outputs) == 1


def _is_sink(node: ir.Node) -> bool:
    """The chain's last node: something other than data movement (or a graph output) reads it."""
    out = node.outputs[0]
    return out.is_graph_output() or any(not _is_move(user) for user, _ in out.uses())


def _region(sink: ir.Node) -> tuple[list[ir.Node], ir.Value] | None:
    """(nodes in graph order, the one non-constant input) of the movement chain ending at ``sink``."""
    nodes, stack, sources = [], [sink], set()
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        for value in node.inputs:
            if value is None or _constant(value) is not None:
                continue
            producer = value.producer()
            if producer is not None and _is_move(producer) and not producer.outputs[0].is_graph_output():
                stack.append(producer)
            else:
                sources.add(value)
    if len(sources) != 1:
        return None
    members = {id(n) for n in nodes}
    for node in nodes:  # intermediate results must not be read from outside the chain
        if node is not sink and any(id(user) not in members for user, _ in node.outputs[0].uses()):
            return None
    order = {id(n): i for i, n in enumerate(sink.graph)}
    return sorted(nodes, key=lambda n: order[id(n)]), next(iter(sources))


def _constant(value: ir.Value):
    return ir.convenience.get_const_tensor(value)


def _row_permutation(nodes: list[ir.Node], source: ir.Value, out: ir.Value) -> np.ndarray | None:
    """Row indices r with out.reshape(-1, C) == source.reshape(-1, C)[r], or None if not a row gather."""
    shape, out_shape = static_shape(source), static_shape(out)
    if not shape or out_shape is None or source.dtype is None:
        return None
    channels = shape[-1]
    index = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    try:
        moved = _evaluate(nodes, source, out, index)
    except Exception:  # an op the reference evaluator cannot run on int64: leave the chain alone
        return None
    flat = moved.reshape(-1)
    if flat.size % channels or moved.shape != out_shape:
        return None
    rows = flat.reshape(-1, channels)
    if not (np.all(rows[:, :1] % channels == 0) and np.array_equal(rows - rows[:, :1], np.broadcast_to(
            np.arange(channels), rows.shape))):
        return None
    return rows[:, 0] // channels


def _evaluate(nodes: list[ir.Node], source: ir.Value, out: ir.Value, index: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    initializers, protos = {}, []
    for node in nodes:
        protos.append(ir.serde.serialize_node(node))
        for value in node.inputs:
            tensor = _constant(value) if value is not None else None
            if tensor is not None:
                initializers[value.name] = ir.serde.serialize_tensor(tensor)
                initializers[value.name].name = value.name
    graph = onnx.helper.make_graph(
        protos, "chain", [onnx.helper.make_tensor_value_info(source.name, onnx.TensorProto.INT64, index.shape)],
        [onnx.helper.make_tensor_value_info(out.name, onnx.TensorProto.INT64, None)], list(initializers.values()))
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    return ReferenceEvaluator(model).run(None, {source.name: index})[0]


def _replace(graph: ir.Graph, nodes: list[ir.Node], source: ir.Value, sink: ir.Node, rows: np.ndarray) -> None:
    channels = static_shape(source)[-1]
    out = sink.outputs[0]
    base = out.name or "window_permutation"

    def const(name: str, array: np.ndarray) -> ir.Value:
        value = ir.Value(name=f"{base}/{name}", shape=ir.Shape(array.shape),
                         type=ir.TensorType(ir.DataType.INT64), const_value=ir.tensor(array, name=f"{base}/{name}"))
        graph.register_initializer(value)
        return value

    flat = ir.node("Reshape", [source, const("rows_shape", np.array([-1, channels], np.int64))])
    gather = ir.node("Gather", [flat.outputs[0], const("rows", rows.astype(np.int64))], attributes={"axis": 0})
    final = ir.node("Reshape", [gather.outputs[0], const("out_shape", np.array(static_shape(out), np.int64))])
    graph.insert_before(nodes[0], [flat, gather, final])
    new = final.outputs[0]
    new.shape, new.dtype = out.shape, out.dtype
    was_output, name = out.is_graph_output(), out.name
    ir.convenience.replace_all_uses_with(out, new, replace_graph_outputs=True)
    for n in nodes:  # detach first: a removed node still counts as a use of its inputs (dead initializers stay)
        for k in range(len(n.inputs)):
            n.replace_input_with(k, None)
    graph.remove(nodes, safe=False)
    if was_output:  # the graph output keeps its name
        out.name, new.name = None, name
