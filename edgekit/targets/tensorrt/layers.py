"""Engine layers -> ONNX nodes -> PyTorch modules, per-layer times, and the attention audit.

Inputs are what TensorRT gives on the device: the engine inspector's JSON (``IEngineInspector`` or
``trtexec --exportLayerInfo``, built with detailed profiling verbosity) and per-layer times
(``IProfiler.report_layer_time`` or ``trtexec --exportProfile``). The ONNX parser records, in each
layer's ``Metadata``, the ONNX nodes it was built from: ``[ONNX Layer: /a/MatMul]`` entries separated by
``\\x1f`` (nodes fused together) or ``\\x1e``. Layers without metadata fall back to their names
(``a + b``, ``{ForeignNode[a...b]}``). A node inside a model-local function (an edgekit op built from its
body by plain trtexec) carries the calling node's name as a prefix and maps to the calling node.

The attention audit finds each attention block of the ONNX (an edgekit plugin node, or a
``MatMul -> [scale/bias] -> Softmax -> MatMul`` chain) and says how the engine ran it: as the plugin,
as one fused kernel, inside one Myelin region, or as separate matmuls.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import onnx

PLUGIN_LAYER_TYPES = ("PluginV3", "PluginV2", "Plugin", "PLUGIN_V3", "PLUGIN_V2")
_PASS_THROUGH = ("Add", "Mul", "Div", "Cast", "Reshape", "Where", "Transpose", "Squeeze", "Unsqueeze", "Identity")


def parse_layer_info(data: str | dict) -> list[dict]:
    """Engine inspector JSON -> [{"name", "type", "onnx_nodes", "tactic"}] in execution order (the engine's
    own reader, :func:`edgekit.engines.tensorrt.inspector_layers`)."""
    from edgekit.engines.tensorrt import inspector_layers

    return inspector_layers(data)


def names_in_layer_name(name: str) -> list[str]:
    """'a + b' -> [a, b]; '{ForeignNode[a...b]}' -> [a, b] (only the ends of a Myelin region are named)."""
    from edgekit.engines.tensorrt import trt_layer_names

    return trt_layer_names(name)


def parse_profile(data: str | list | dict) -> dict[str, float]:
    """Per-layer times, layer name -> ms per inference: from ``trtexec --exportProfile`` JSON
    ([{"count": N}, {"name", "averageMs" | "timeMs", ...}, ...]) or an {name: ms} mapping."""
    doc = json.loads(data) if isinstance(data, str) else data
    if isinstance(doc, dict):
        return {str(k): float(v) for k, v in doc.items()}
    count = next((e["count"] for e in doc if "count" in e and "name" not in e), 1) or 1
    out = {}
    for e in doc:
        if "name" in e:
            out[e["name"]] = float(e["averageMs"]) if "averageMs" in e else float(e.get("timeMs", 0.0)) / count
    return out


class NodeIndex:
    """The ONNX graph's node names, op types and the PyTorch module each name encodes."""

    def __init__(self, model: onnx.ModelProto):
        self.nodes = {n.name: n for n in model.graph.node}
        self._by_length = sorted(self.nodes, key=len, reverse=True)

    def resolve(self, name: str) -> str | None:
        """An engine-side ONNX name -> the graph node it belongs to (itself, or the function call it is in)."""
        if name in self.nodes:
            return name
        return next((n for n in self._by_length if n and name.startswith(n) and name[len(n):len(n) + 1] in "/_:"),
                    None)

    @staticmethod
    def module(node_name: str) -> str:
        """'/stages.1/blocks.0/attn/MatMul' -> 'stages.1.blocks.0.attn' (TorchScript exporter names); '' if none."""
        from edgekit.profiling.layers import module_segments

        segments = module_segments(node_name) or []
        out: list[str] = []
        for s in segments:  # '/layers/layers.0/...' names a ModuleList and then its item: keep the item
            if out and s.startswith(out[-1] + "."):
                out[-1] = s
            else:
                out.append(s)
        return ".".join(out)


def map_layers(layers: list[dict], model: onnx.ModelProto, times: dict[str, float] | None = None) -> list[dict]:
    """Each engine layer with its ONNX nodes resolved, its module (the deepest one its nodes share) and its time."""
    index = NodeIndex(model)
    rows = []
    for layer in layers:
        nodes = list(dict.fromkeys(r for r in (index.resolve(n) for n in layer["onnx_nodes"]) if r))
        modules = [index.module(n).split(".") for n in nodes if index.module(n)]
        common: list[str] = []
        for parts in zip(*modules) if modules else ():
            if any(p != parts[0] for p in parts):
                break
            common.append(parts[0])
        rows.append({**layer, "onnx_nodes": nodes, "module": ".".join(common),
                     "time_ms": (times or {}).get(layer["name"])})
    return rows


@dataclass
class AttentionBlock:
    module: str
    kind: str  # "plugin" (an edgekit op node) or "softmax" (MatMul -> Softmax -> MatMul)
    nodes: dict[str, str] = field(default_factory=dict)  # role -> ONNX node name


def find_attention_blocks(model: onnx.ModelProto) -> list[AttentionBlock]:
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    blocks = []
    for n in model.graph.node:
        if n.domain == "edgekit":
            blocks.append(AttentionBlock(NodeIndex.module(n.name), "plugin", {"plugin": n.name}))
        elif n.op_type == "Softmax":
            qk = _walk(n, lambda m: [producer[i] for i in m.input if i in producer])
            av = _walk(n, lambda m: [c for o in m.output for c in consumers.get(o, [])])
            if qk is not None and av is not None:
                blocks.append(AttentionBlock(NodeIndex.module(n.name), "softmax",
                                             {"qk": qk.name, "softmax": n.name, "av": av.name}))
    return blocks


def _walk(start, step, hops: int = 4):
    """The first MatMul reached from ``start`` through scale/bias/cast/reshape ops, within ``hops``."""
    frontier = step(start)
    for _ in range(hops):
        nxt = []
        for m in frontier:
            if m.op_type == "MatMul":
                return m
            if m.op_type in _PASS_THROUGH:
                nxt += step(m)
        frontier = nxt
    return None


def audit_attention(blocks: list[AttentionBlock], rows: list[dict]) -> list[dict]:
    """For each block: how the engine ran it, with the layers as evidence. ``rows`` from :func:`map_layers`."""
    where: dict[str, list[dict]] = {}
    for row in rows:
        for node in row["onnx_nodes"]:
            where.setdefault(node, []).append(row)
    out = []
    for b in blocks:
        layers = list({id(r): r for node in b.nodes.values() for r in where.get(node, [])}.values())
        names = [r["name"] for r in layers]
        if not layers:
            verdict = "not found in the engine (folded away or renamed)"
        elif b.kind == "plugin" and any(r["type"] in PLUGIN_LAYER_TYPES for r in layers):
            verdict = "plugin"
        elif len(layers) == 1 and names[0].startswith("{ForeignNode["):
            verdict = "one Myelin region (TensorRT's own fused subgraph)"
        elif len(layers) == 1:
            verdict = "fused kernel"
        else:
            verdict = "separate matmuls" if b.kind == "softmax" else "function body as separate layers"
        times = [r["time_ms"] for r in layers if r.get("time_ms") is not None]
        out.append({"module": b.module, "kind": b.kind, "nodes": b.nodes, "ran_as": verdict, "layers": names,
                    "layer_types": [r["type"] for r in layers], "time_ms": sum(times) if times else None})
    return out


def layer_report(engine, feeds: dict, onnx_path, iters: int = 20) -> dict:
    """A TensorRT engine's (:class:`edgekit.engines.tensorrt.TrtEngine`) per-layer times (median ms) mapped to ONNX
    nodes and PyTorch modules, and the attention audit."""
    import numpy as np

    model = onnx.load(str(onnx_path), load_external_data=False)
    times = {name: float(np.median(ms)) for name, ms in engine.layer_times([feeds], iters).items()}
    rows = map_layers(engine.layer_info(), model, times)
    return {"layers": rows, "attention": audit_attention(find_attention_blocks(model), rows)}
