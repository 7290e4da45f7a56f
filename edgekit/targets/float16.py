"""fp16 ONNX for the targets that convert the graph themselves (ONNX Runtime, TensorRT).

ONNX Runtime's ``convert_float_to_float16`` does the conversion; this wraps it with one repair. An
initializer that fp16 nodes read is converted to fp16, and each fp32 reader of it (an island, or an
input that must stay float such as Resize's scales) gets a Cast back to fp32 named after the
*tensor*: with two such readers the graph has two identical Casts writing one tensor, which ONNX
Runtime refuses to load ("two nodes with same node name"). onnxslim shares equal constants between
layers, so real models hit it (Swin-T-seg: its decode head's Resize scales, equal LayerNorm weights).
Identical nodes compute the same value, so all but the first are dropped.
"""
from __future__ import annotations

import onnx


def to_float16(model: onnx.ModelProto, **kwargs) -> onnx.ModelProto:
    """``convert_float_to_float16(model, **kwargs)``, without the duplicate Casts it can write."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return drop_duplicate_nodes(convert_float_to_float16(model, **kwargs))


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
