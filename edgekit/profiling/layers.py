"""Per-layer records from a runtime's profiler, mapped back to ONNX nodes and PyTorch modules, and
aggregated by op type and by model block.

The TorchScript exporter names every node after the module that emitted it
(``/stages.1/blocks.0/attn/MatMul`` comes from module ``stages.1.blocks.0.attn``); a block is the
first ``block_depth`` units of that path (``stages.1.blocks.0`` at 2). Runtimes keep
those names or say which ones they fused into a layer (OpenVINO's ``originalLayersNames``,
TensorRT's ``a + b`` names), and ONNX Runtime's optimized graph carries the tensors each fused
node reads and writes. A layer the runtime named itself (``MVN_97``, ``Gelu``) gets the deepest
module its neighbours in execution order share, and is marked ``module_inferred``.
"""
from __future__ import annotations

import re
from collections import defaultdict

# What runtimes add to the ONNX node name of a layer they rewrote. OpenVINO: "/WithoutBiases" on a
# convolution split from its bias, and layout reorders named "<from>___<to>_acdb_abc_fake" or
# "input_abcd_acdb_<to>"; ONNX Runtime: "_nchwc", "/MatMulScaleFusion/", "_token_3" and friends.
# Runtime-specific edits are always undone; the ORT-style ones only while searching a graph's names.
_RUNTIME = [re.compile(p) for p in (r"/sink_port_\d+$", r"^.*___", r"^[^/]+(?=/)", r"(_[a-z]+){2}_fake$",
                                    r"/WithoutBiases$")]
_ORT = [re.compile(p) for p in (r"_nchwc$", r"/[A-Za-z]+Fusion/?$", r"_new_reshape$", r"_(pre|post)_reshape$",
                                r"_token_\d+$", r"_output_\d+$")]


def _strip(name: str, patterns) -> list[str]:
    out = [name]
    changed = True
    while changed:
        changed = False
        for pat in patterns:
            new = pat.sub("", out[-1])
            if new != out[-1] and new:
                out.append(new)
                changed = True
    return out


def _candidates(name: str) -> list[str]:
    """Names to try, the runtime's own first: 'a_output_0_nchwc' -> [..., 'a_output_0', 'a']."""
    runtime = _strip(name, _RUNTIME)
    return [name] + runtime[1:] + _strip(runtime[-1], _ORT)[1:]


def module_segments(node_name: str) -> list[str] | None:
    """The PyTorch module of an exporter-named node, as units (an attribute with its index, if any):
    '/stages.1/blocks.0/attn/MatMul' -> ['stages.1', 'blocks.0', 'attn'];
    '/stages/stages.2/blocks/blocks.0/proj/Conv' -> ['stages.2', 'blocks.0', 'proj'] (a called
    nn.Sequential adds its own scope, then its child as 'stages.2'); '/ReduceMean' -> [] (the root
    module); a name the exporter did not give a path ('MVN_97', 'output') -> None."""
    if not node_name.startswith("/"):
        return None
    units: list[str] = []
    for seg in (p for p in node_name.split("/")[1:-1] if p):
        head, _, index = seg.rpartition(".")
        if head and index.isdigit() and units and units[-1] == head:
            units[-1] = seg  # 'stages' then 'stages.2': the same container, now with the child's index
        else:
            units.append(seg)
    return units


def _common(paths: list[list[str]]) -> list[str]:
    if not paths:
        return []
    out = []
    for parts in zip(*paths):
        if any(p != parts[0] for p in parts):
            break
        out.append(parts[0])
    return out


class GraphIndex:
    """The bundle's ONNX graph, when it has one: node names, and which node produces each tensor."""

    def __init__(self, nodes: list[tuple[str, list[str], list[str]]]):
        self.names = {n for n, _, _ in nodes}
        self.producer = {o: n for n, _, outs in nodes for o in outs if o}

    @staticmethod
    def from_onnx(path) -> GraphIndex:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        return GraphIndex([(n.name, list(n.input), list(n.output)) for n in graph.node])


def resolve_nodes(record: dict, graph: GraphIndex | None) -> list[str]:
    """The ONNX node names a layer record stands for."""
    named = record.get("onnx_nodes") or [record["name"]]
    out = []
    for name in named:
        cands = _candidates(name)
        hit = next((c for c in cands if graph is not None and c in graph.names), None)
        if hit is None and graph is not None:
            continue
        out.append(hit or cands[-1])
    if not out and graph is not None:  # ORT: a fused node whose name is new but whose output tensor is not
        out = [graph.producer[t] for t in record.get("outputs", []) if t in graph.producer]
    if not out and graph is None:
        out = [_strip(n, _RUNTIME)[-1] for n in named]
    return list(dict.fromkeys(out))


def annotate(records: list[dict], graph: GraphIndex | None, block_depth: int = 2) -> list[dict]:
    """Add onnx_nodes (resolved), module (dotted PyTorch module path), module_inferred and block to
    each record (in execution order); returns new dicts."""
    out = []
    mods: list[list[str] | None] = []
    for r in records:
        nodes = resolve_nodes(r, graph)
        segs = [s for s in (module_segments(n) for n in nodes) if s is not None]
        mods.append(_common(segs) if segs else None)
        out.append({k: v for k, v in r.items() if k not in ("inputs", "outputs")} | {"onnx_nodes": nodes})
    for i, r in enumerate(out):
        segs, inferred = mods[i], False
        if segs is None:  # the runtime named this layer itself: what its neighbours share
            prev = next((mods[j] for j in range(i - 1, -1, -1) if mods[j] is not None), None)
            nxt = next((mods[j] for j in range(i + 1, len(mods)) if mods[j] is not None), None)
            segs, inferred = _common([m for m in (prev, nxt) if m is not None]), True
        r["module"] = ".".join(segs)
        r["module_inferred"] = inferred
        r["block"] = ".".join(segs[:block_depth]) or "(root)"
    return out


def aggregate(records: list[dict], key: str) -> list[dict]:
    """Sum of per-inference layer times grouped by ``key`` (op_type, block, module), largest first."""
    total = sum(r["time_ms"] for r in records) or 1.0
    groups: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for r in records:
        g = groups[r[key] or "(root)"]
        g[0] += r["time_ms"]
        g[1] += 1
    rows = [{"name": k, "time_ms": t, "share": t / total, "layers": n} for k, (t, n) in groups.items()]
    return sorted(rows, key=lambda row: -row["time_ms"])


def summarize(profile: dict, graph: GraphIndex | None, block_depth: int, top: int, latency_ms: float) -> dict:
    """A runtime's profile -> records annotated, by op type, by block, top-N slowest, and coverage
    (sum of layer times over the unprofiled median latency: the profiler's overhead shows above 1)."""
    records = annotate(profile["records"], graph, block_depth)
    total = sum(r["time_ms"] for r in records)
    for r in records:
        r["share"] = r["time_ms"] / total if total else 0.0
    ranked = sorted(records, key=lambda r: -r["time_ms"])
    return {"profiler": profile["profiler"], "statistic": profile.get("statistic", "median"),
            "iterations": profile["iterations"], "total_ms": total,
            "coverage": total / latency_ms if latency_ms else None, "records": records,
            "by_op_type": aggregate(records, "op_type"), "by_block": aggregate(records, "block"),
            "top": [r["name"] for r in ranked[:top]]}
