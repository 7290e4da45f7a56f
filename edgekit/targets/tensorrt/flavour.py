"""The TensorRT-flavoured ONNX: what TensorRT's ONNX parser builds from, checked here without TensorRT.

What makes it TensorRT-flavoured, beyond the per-target rewrites and swaps:

- edgekit's attention ops stay single nodes in domain ``edgekit`` carrying ``plugin_namespace`` and
  ``aot``: TensorRT's parser looks a node that has ``plugin_namespace`` up in the plugin registry by
  op_type + ``plugin_namespace`` (+ ``plugin_version``, default "1"), copies the attributes named like the
  plugin's fields into it, and (``aot=1``, TensorRT >= 10.9) builds the ahead-of-time kernel into the
  engine. When no plugin is registered (plain ``trtexec``), it imports the model-local function of the
  same name instead, which is also what ONNX Runtime runs here;
- precision is in the graph (strongly typed builds): fp16 tensors with fp32 islands around
  normalisations and reductions (the LayerNorm/variance overflow), explicit Q/DQ for int8;
- only domains the parser implements: the default ONNX domain and ``edgekit``.

:func:`check_structure` verifies all of it and returns a report for the manifest; a problem is
something the parser would reject or silently build differently.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import onnx

from edgekit.config import Precision
from edgekit.errors import EdgekitFailure

PLUGIN_DOMAIN = "edgekit"
PARSER_DOMAINS = ("", "ai.onnx", PLUGIN_DOMAIN)
# Kept in fp32 in fp16 engines: normalisations and the reductions a decomposed one is made of. Their
# sums of squares overflow fp16 (65504) on real activations; each becomes a Cast-wrapped fp32 island,
# and neighbouring ops stay fp16, so islands do not spread.
FP32_ISLAND_OPS = ("LayerNormalization", "GroupNormalization", "InstanceNormalization", "ReduceMean", "ReduceSum",
                   "ReduceSumSquare", "ReduceL2", "Pow", "Sqrt")
_ATTR_KIND = {float: onnx.AttributeProto.FLOAT, int: onnx.AttributeProto.INT, str: onnx.AttributeProto.STRING}


@dataclass(frozen=True)
class PluginNode:
    """One edgekit op node as TensorRT's parser will see it."""

    node: str  # ONNX node name
    op: str  # op_type == plugin name
    namespace: str  # plugin_namespace attribute
    fields: dict  # plugin fields the parser will pass (name -> value)

    def to_dict(self) -> dict:
        return {"node": self.node, "plugin": f"{self.namespace}::{self.op}", "fields": self.fields}


@dataclass
class StructureReport:
    plugins: list[PluginNode] = field(default_factory=list)
    qdq: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"plugin_nodes": [p.to_dict() for p in self.plugins], "qdq": self.qdq, "problems": self.problems,
                "warnings": self.warnings}

    def raise_if_problems(self) -> None:
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise EdgekitFailure(f"the TensorRT-flavoured ONNX is not what TensorRT's parser expects: "
                                 f"{self.problems[0]}{more}")


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def check_plugin_nodes(model: onnx.ModelProto, report: StructureReport) -> None:
    """Every edgekit node must route to its plugin and carry exactly the fields the plugin registers."""
    from edgekit.plugins import OPS

    local = {(f.domain, f.name) for f in model.functions}
    imports = {o.domain for o in model.opset_import}
    for node in model.graph.node:
        if node.domain != PLUGIN_DOMAIN:
            continue
        where = f"node {node.name!r} ({node.domain}::{node.op_type})"
        op = OPS.get(node.op_type)
        if op is None:
            report.problems.append(f"{where}: no such edgekit plugin (known: {', '.join(sorted(OPS))})")
            continue
        attrs = _attrs(node)
        namespace, version = attrs.get("plugin_namespace"), str(attrs.get("plugin_version", "1"))
        plugin_id = importlib.import_module(op.tensorrt_module).PLUGIN.plugin_id
        want_ns, _, want_name = plugin_id.partition("::")
        if namespace != want_ns or node.op_type != want_name:
            report.problems.append(f"{where}: the parser looks plugins up by op_type + plugin_namespace; it needs "
                                   f"plugin_namespace={want_ns!r} to find {plugin_id}, got {namespace!r}")
        if version != "1":
            report.problems.append(f"{where}: plugin_version {version!r}; edgekit registers version 1")
        if attrs.get("aot") != 1:
            report.problems.append(f"{where}: aot={attrs.get('aot')!r}; the node must say aot=1 so TensorRT bakes the "
                                   f"ahead-of-time kernel into the engine (no Python at run time)")
        for spec in op.schema.attributes:
            a = next((a for a in node.attribute if a.name == spec.name), None)
            if a is not None and a.type != _ATTR_KIND[spec.kind]:
                kind = onnx.AttributeProto.AttributeType.Name(a.type)
                report.problems.append(f"{where}: attribute {spec.name} is {kind}; "
                                       f"plugin field {spec.name} is {spec.kind.__name__}, so the parser would pass "
                                       f"the wrong type")
        try:
            fields = importlib.import_module(op.tensorrt_module).PLUGIN.plugin_fields(attrs)
        except ValueError as e:
            report.problems.append(f"{where}: {e}")
            continue
        if (PLUGIN_DOMAIN, node.op_type) not in local:
            report.problems.append(f"{where}: no model-local function {PLUGIN_DOMAIN}::{node.op_type}; without it "
                                   f"ONNX Runtime cannot run the node and plain trtexec cannot build it")
        if PLUGIN_DOMAIN not in imports:
            report.problems.append(f"the model does not import opset domain {PLUGIN_DOMAIN!r}")
        report.plugins.append(PluginNode(node.name, node.op_type, namespace or "", fields))


def check_domains(model: onnx.ModelProto, report: StructureReport) -> None:
    bad = sorted({(n.domain, n.op_type) for n in model.graph.node if n.domain not in PARSER_DOMAINS})
    if bad:
        listed = ", ".join(f"{d}::{t}" for d, t in bad[:5])
        report.problems.append(f"ops outside the domains TensorRT's parser implements: {listed}")


def check_structure(model: onnx.ModelProto, precision: Precision) -> StructureReport:
    """Plugin nodes, domains and (for int8) Q/DQ placement, as TensorRT's parser will read them."""
    from edgekit.targets.tensorrt.qdq import check_qdq

    report = StructureReport()
    check_domains(model, report)
    check_plugin_nodes(model, report)
    report.qdq = check_qdq(model, report, require=precision is Precision.INT8)
    if precision is Precision.FP16:
        check_fp16_io(model, report)
    return report


def check_fp16_io(model: onnx.ModelProto, report: StructureReport) -> None:
    """fp16 engines keep fp32 inputs and outputs (the app feeds what it always fed) and fp16 inside."""
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    for v in [*model.graph.input, *model.graph.output]:
        if v.type.tensor_type.elem_type != f32:
            report.problems.append(f"graph input/output {v.name!r} is not float32")
    if not any(init.data_type == f16 for init in model.graph.initializer):
        report.problems.append("an fp16 model with no fp16 weights: the conversion did not happen")


def trt_flavour(model: onnx.ModelProto, precision: Precision) -> tuple[onnx.ModelProto, list[str]]:
    """The ONNX TensorRT builds from, for ``precision``; returns (model, notes).

    fp32 and int8 (Q/DQ placed by the quantize step) come as they are; fp16 is converted here with fp32
    islands (:data:`FP32_ISLAND_OPS`) and fp32 graph inputs/outputs.
    """
    from edgekit.plugins_bridge import uses_plugins

    notes = []
    if uses_plugins(model):
        from edgekit.plugins import attach_functions

        model = attach_functions(model)  # idempotent: the pipeline attached them already
    if precision is Precision.FP16:
        from edgekit.targets.float16 import to_float16

        blocked = sorted({n.op_type for n in model.graph.node if n.op_type in FP32_ISLAND_OPS})
        model = to_float16(model, keep_io_types=True, op_block_list=list(FP32_ISLAND_OPS))
        notes.append("fp16 weights and activations (strongly typed); fp32 inputs, outputs and islands around "
                     + (", ".join(blocked) if blocked else "no normalisation ops (none in the graph)"))
    elif precision not in (Precision.FP32, Precision.INT8):
        raise EdgekitFailure(f"TensorRT target does not support precision {precision.value}")
    return model, notes
