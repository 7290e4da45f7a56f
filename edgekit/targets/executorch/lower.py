"""torch.export program -> an ExecuTorch program lowered to one backend, and what was delegated.

The delegation report says how much of the graph the backend took (its nodes, and its share of the model's
FLOPs, counted with PyTorch's own formulas) and, for each node left on ExecuTorch's portable kernels, its PyTorch
module and why: the backend has no kernel for that op, or its partitioner refused the node (the reason it logs).
The program map (:func:`program_map`) lets the profiler give each ETDump event its PyTorch module.
"""
from __future__ import annotations

import logging
import operator
from collections import Counter

from edgekit.engines.base import first_line
from edgekit.errors import EdgekitFailure, UsageError
from edgekit.targets.torch_program import aten_name, graph_flops, module_path, node_flops, onnx_style_name, quiet

# where each delegate's ahead-of-time parts live in the executorch wheel, and the class that partitions for it
PARTITIONERS = {
    "xnnpack": ("executorch.backends.xnnpack.partition.xnnpack_partitioner", "XnnpackPartitioner"),
    "coreml": ("executorch.backends.apple.coreml.partition", "CoreMLPartitioner"),
    "qnn": ("executorch.backends.qualcomm.partition.qnn_partitioner", "QnnPartitioner"),
    "vulkan": ("executorch.backends.vulkan.partitioner.vulkan_partitioner", "VulkanPartitioner"),
}
BACKEND_IDS = {"xnnpack": "XnnpackBackend", "coreml": "CoreMLBackend", "qnn": "QnnBackend",
               "vulkan": "VulkanBackend"}
_WHY_LOGGER = "executorch.backends.xnnpack.partition"  # XNNPACK's configs log "WhyNoPartition: Node ... because"


class _Why(logging.Handler):
    """Collects the partitioner's reasons for refusing nodes (logged at DEBUG)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.reasons: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "WhyNoPartition" in message and " was not partitioned because " in message:
            node, _, reason = message.partition(" was not partitioned because ")
            self.reasons.setdefault(node.rsplit(" ", 1)[-1], reason.rstrip("."))


def partitioner(delegate: str):
    """The delegate's partitioner, or a one-line UsageError saying why it cannot be lowered for here."""
    import importlib

    module, name = PARTITIONERS[delegate]
    try:
        with quiet():
            cls = getattr(importlib.import_module(module), name)
    except Exception as e:  # noqa: BLE001 - an ahead-of-time part that does not import is the reason
        first = first_line(e, 200)
        raise UsageError(f"--delegate {delegate} cannot be lowered here: the executorch wheel's {delegate} "
                         f"ahead-of-time part does not import ({first}); see docs/executorch.md for what it "
                         f"needs") from None
    if delegate == "coreml":
        return cls()
    if delegate == "qnn":
        raise UsageError("--delegate qnn needs Qualcomm's QNN SDK (QNN_SDK_ROOT, its compile specs for the target "
                         "SoC), which is not on PyPI; lower on a machine with the SDK (docs/executorch.md)")
    return cls()


def supported_ops(delegate: str) -> set[str] | None:
    """The ops the delegate's partitioner has a rule for (XNNPACK lists them); None where unknown."""
    if delegate != "xnnpack":
        return None
    try:
        from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS
    except ImportError:
        return None
    return {c.target_name.split(".")[0] for c in ALL_PARTITIONER_CONFIGS}


def lower(exported, delegate: str):
    """``exported`` (a torch.export program) -> (the executorch program manager, the delegation report, the
    program map)."""
    with quiet():  # torchao, imported with it, logs the CUDA kernels it cannot load
        from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
    part = partitioner(delegate)
    why = _Why()
    log = logging.getLogger(_WHY_LOGGER)
    level, propagate = log.level, log.propagate
    log.setLevel(logging.DEBUG)
    log.propagate = False  # the partitioner's module sets up a root handler; its reasons go to the report only
    log.addHandler(why)
    try:
        with quiet():
            log.setLevel(logging.DEBUG)  # quiet() raised the library loggers' levels; the reasons are DEBUG
            edge = to_edge_transform_and_lower(exported, partitioner=[part],
                                               compile_config=EdgeCompileConfig(_check_ir_validity=False))
            graph_module = edge.exported_program().graph_module
            report = delegation_report(graph_module, delegate, why.reasons)
            mapping = program_map(graph_module)
            program = edge.to_executorch()
    except (UsageError, EdgekitFailure):
        raise
    except Exception as e:  # noqa: BLE001 - lowering raises many types; its first line names the op or node
        first = first_line(e, 300)
        raise EdgekitFailure(f"ExecuTorch could not lower the program for {delegate}: {first}") from None
    finally:
        log.removeHandler(why)
        log.setLevel(level)
        log.propagate = propagate
    return program, report, mapping


def _two_pass_layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    dims = tuple(range(-len(normalized_shape), 0))
    centered = x - x.mean(dims, keepdim=True)
    y = centered * (centered * centered).mean(dims, keepdim=True).add(eps).rsqrt()
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


def two_pass_layer_norm(exported):
    """``exported`` with every LayerNorm written out in two passes (the mean, then the variance of the centered
    values); returns (program, how many).

    ExecuTorch 1.5's portable ``native_layer_norm`` kernel, where LayerNorm runs (XNNPACK has none), loses
    precision when the mean is large next to the spread: a LayerNorm over 96 channels of N(100, 1) input was off
    by 1.4e-2 against PyTorch, N(10, 1) by 1.4e-4, N(0, 1) by 7e-7. Written out, the same LayerNorm is within
    4.3e-5 at N(100, 1); its subtractions and products run in XNNPACK, the two means on the portable kernels."""
    import torch

    count = sum(1 for n in exported.graph.nodes if n.op == "call_function"
                and n.target in (torch.ops.aten.layer_norm.default, torch.ops.aten.native_layer_norm.default))
    if not count:
        return exported, 0
    with quiet():  # only LayerNorm: the rest stays as captured (XNNPACK's passes match linear, not addmm)
        return exported.run_decompositions({torch.ops.aten.layer_norm.default: _two_pass_layer_norm}), count


def _is_delegate_call(node) -> bool:
    return node.op == "call_function" and "executorch_call_delegate" in str(node.target)


def _portable(graph_module) -> list:
    """Call nodes of the lowered graph that run on the portable kernels (delegate calls and getitem excluded)."""
    return [n for n in graph_module.graph.nodes if n.op == "call_function" and not _is_delegate_call(n)
            and n.target is not operator.getitem]


def _lowered_modules(graph_module) -> list:
    """The lowered modules in the order the program calls them."""
    out = []
    for n in graph_module.graph.nodes:
        if _is_delegate_call(n):
            out.append(getattr(graph_module, n.args[0].target))
    return out


def delegation_report(graph_module, delegate: str, reasons: dict[str, str]) -> dict:
    """How much of the graph ``delegate`` took: nodes, share of FLOPs, and every node left on the portable
    kernels, grouped by op and module, with the reason."""
    lowered = _lowered_modules(graph_module)
    delegated_nodes = sum(1 for lm in lowered for n in lm.original_module.graph.nodes if n.op == "call_function"
                          and n.target is not operator.getitem)
    portable = _portable(graph_module)
    supported = supported_ops(delegate)
    rows: dict[tuple[str, str, str], dict] = {}
    portable_flops = 0
    for n in portable:
        op = aten_name(n)
        flops = node_flops(n)
        portable_flops += flops
        if n.name in reasons:
            reason = f"the {delegate} partitioner refused it: {reasons[n.name]}"
        elif supported is not None and op not in supported:
            reason = f"{delegate} has no kernel for aten.{op}"
        else:
            reason = f"not taken by the {delegate} partitioner"
        key = (op, module_path(n), reason)
        row = rows.setdefault(key, {"op": f"aten.{op}", "module": module_path(n) or "(root)", "count": 0,
                                    "flops": 0, "reason": reason})
        row["count"] += 1
        row["flops"] += flops
    # counted on the edge graph, as lowered (convolutions, matmuls), delegated and portable alike
    total = portable_flops + sum(graph_flops(lm.original_module) for lm in lowered)
    share = 1.0 - portable_flops / total if total else (1.0 if not portable else 0.0)
    ops = Counter(f"aten.{aten_name(n)}" for n in portable)
    return {"delegate": delegate, "subgraphs": len(lowered),
            "nodes": {"delegated": delegated_nodes, "portable": len(portable)},
            "node_share": round(delegated_nodes / max(delegated_nodes + len(portable), 1), 4),
            "flops": {"total": total, "delegated": total - portable_flops, "share": round(share, 6)},
            "portable_ops": dict(ops.most_common()),
            "portable": sorted(rows.values(), key=lambda r: (-r["flops"], -r["count"]))}


def program_map(graph_module) -> dict:
    """What the profiler needs to give ETDump events their modules, in program order: each portable node (its
    op, ONNX-style name) and, per delegate call, the delegated nodes (op, ONNX-style name)."""
    calls = []
    for n in graph_module.graph.nodes:
        if _is_delegate_call(n):
            lm = getattr(graph_module, n.args[0].target)
            calls.append({"delegate": [{"op": aten_name(m), "name": onnx_style_name(m)}
                                       for m in lm.original_module.graph.nodes
                                       if m.op == "call_function" and m.target is not operator.getitem]})
        elif n.op == "call_function" and n.target is not operator.getitem:
            calls.append({"op": aten_name(n), "name": onnx_style_name(n)})
    return {"calls": calls}
