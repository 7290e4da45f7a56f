"""fp16 ONNX for the targets that convert the graph themselves (ONNX Runtime, TensorRT).

ONNX Runtime's ``convert_float_to_float16`` does the conversion; this wraps it with one repair. An
initializer that fp16 nodes read is converted to fp16, and each fp32 reader of it (an island, or an
input that must stay float such as Resize's scales) gets a Cast back to fp32 named after the
*tensor*: with two such readers the graph has two identical Casts writing one tensor, which ONNX
Runtime refuses to load ("two nodes with same node name"). onnxslim shares equal constants between
layers, so real models hit it (Swin-T-seg: its decode head's Resize scales, equal LayerNorm weights).
Identical nodes compute the same value, so all but the first are dropped.

A second repair keeps an island fp32 inside: the converter casts every fp32 node's output to fp16 and back
again before the next fp32 node reads it, so a value passed between two island nodes still goes through fp16
(an epsilon of 1e-9 added in one node and divided by in the next became 0 in between). Such a
fp32 -> fp16 -> fp32 round trip, whose fp16 value only feeds Casts back to fp32, is removed.
"""
from __future__ import annotations

import onnx


def to_float16(model: onnx.ModelProto, **kwargs) -> onnx.ModelProto:
    """``convert_float_to_float16(model, **kwargs)``, without the duplicate Casts it can write."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return drop_round_trips(drop_duplicate_nodes(convert_float_to_float16(model, **kwargs)))


def drop_round_trips(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove Cast(fp32 -> fp16) -> Cast(fp16 -> fp32) pairs between two fp32 nodes: the readers of the second
    Cast read the first Cast's fp32 input instead."""
    def cast_to(node) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    outputs = {o.name for o in model.graph.output}
    rename, dropped = {}, set()
    for node in model.graph.node:
        if cast_to(node) != onnx.TensorProto.FLOAT16 or node.output[0] in outputs:
            continue
        readers = consumers.get(node.output[0], [])
        if not readers or any(cast_to(r) != onnx.TensorProto.FLOAT or r.output[0] in outputs for r in readers):
            continue
        for r in readers:
            rename[r.output[0]] = node.input[0]
            dropped.add(id(r))
        dropped.add(id(node))
    if not rename:
        return model
    kept = [n for n in model.graph.node if id(n) not in dropped]
    for n in kept:
        for k, i in enumerate(n.input):
            if i in rename:
                n.input[k] = rename[i]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def drop_duplicate_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove graph nodes that repeat an earlier node exactly (op, name, inputs, outputs, attributes), and
    value_info entries that repeat a name."""
    seen, nodes = set(), []
    for node in model.graph.node:
        key = node.SerializeToString(deterministic=True)
        if key not in seen:
            seen.add(key)
            nodes.append(node)
    if len(nodes) != len(model.graph.node):
        kept = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]
        del model.graph.node[:]
        model.graph.node.extend(kept)
    names, infos = set(), []
    for vi in model.graph.value_info:
        if vi.name not in names:
            names.add(vi.name)
            infos.append(onnx.ValueInfoProto.FromString(vi.SerializeToString()))
    if len(infos) != len(model.graph.value_info):
        del model.graph.value_info[:]
        model.graph.value_info.extend(infos)
    return model
