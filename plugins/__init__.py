"""edgekit's plugin ops, written once and run everywhere: ``WindowAttention`` and ``LinearAttention``.

Each op lives in its own folder (schema, PyTorch reference, torch entry point, ONNX function body, Triton
kernels, TensorRT registration, README). This module lists them and does what applies to all of them:

- ``OPS``: op name -> ``PluginOp`` (schema, ONNX function builder, torch entry point, ...);
- ``attach_functions(model)``: add the model-local FunctionProto of every edgekit op the graph uses (and the
  ``edgekit`` opset import), so ONNX Runtime runs the same file TensorRT runs as plugins;
- ``inline_functions(model)``: inline them (OpenVINO does not inline custom-domain local functions);
- ``plugin_hashes()``: sha256 of each plugin's sources, for the bundle manifest;
- ``custom_translation_table()`` for ``torch.onnx.export(..., dynamo=True)``;
- ``register_tensorrt()``: register the TensorRT plugins (needs ``tensorrt``; call before parsing ONNX).

Nothing here imports Triton or TensorRT.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.helper
import onnx.inliner
from edgekit.plugins.linear_attention import onnx_function as _la_function
from edgekit.plugins.linear_attention import schema as _la_schema
from edgekit.plugins.linear_attention import torch_op as _la_torch
from edgekit.plugins.op_schema import DOMAIN, DOMAIN_VERSION, MIN_ONNX_OPSET, OpSchema
from edgekit.plugins.window_attention import onnx_function as _wa_function
from edgekit.plugins.window_attention import schema as _wa_schema
from edgekit.plugins.window_attention import torch_op as _wa_torch

__all__ = [
    "DOMAIN", "DOMAIN_VERSION", "OPS", "PluginOp", "attach_functions", "custom_translation_table",
    "inline_functions", "inlined_from", "plugin_hashes", "register_tensorrt", "used_ops",
]

_ROOT = Path(__file__).resolve().parent
# Sources every op depends on besides its own folder (their change changes every plugin's hash).
_SHARED_SOURCES = ("__init__.py", "op_schema.py", "tensorrt_aot.py")


@dataclass(frozen=True)
class PluginOp:
    """One plugin op. ``torch_op`` is the function models call; ``build_function(opset)`` the ONNX body."""

    schema: OpSchema
    build_function: Callable[[int], onnx.FunctionProto]
    torch_op: Callable
    onnx_translation: Callable[[], dict]
    folder: Path
    tensorrt_module: str  # imported only by register_tensorrt()

    @property
    def name(self) -> str:
        return self.schema.name


OPS: dict[str, PluginOp] = {
    op.name: op
    for op in (
        PluginOp(
            schema=_wa_schema.SCHEMA,
            build_function=_wa_function.build_function,
            torch_op=_wa_torch.window_attention,
            onnx_translation=_wa_torch.onnx_translation,
            folder=_ROOT / "window_attention",
            tensorrt_module="edgekit.plugins.window_attention.trt_plugin",
        ),
        PluginOp(
            schema=_la_schema.SCHEMA,
            build_function=_la_function.build_function,
            torch_op=_la_torch.linear_attention,
            onnx_translation=_la_torch.onnx_translation,
            folder=_ROOT / "linear_attention",
            tensorrt_module="edgekit.plugins.linear_attention.trt_plugin",
        ),
    )
}


def _all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Nodes of ``graph`` and of every subgraph (If/Loop/Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _all_nodes(g)


def _edgekit_nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    for node in _all_nodes(model.graph):
        if node.domain == DOMAIN:
            yield node
    for function in model.functions:
        if function.domain != DOMAIN:  # user functions may call our ops too
            for node in function.node:
                if node.domain == DOMAIN:
                    yield node


def used_ops(model: onnx.ModelProto) -> list[str]:
    """Names of the edgekit ops ``model`` uses. Raises on an edgekit op this package does not know."""
    names = sorted({n.op_type for n in _edgekit_nodes(model)})
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise ValueError(f"unknown {DOMAIN} op(s) {unknown}; known: {sorted(OPS)}")
    return names


def _default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise ValueError("model imports no default ONNX opset")


def _complete_node_attributes(node: onnx.NodeProto, schema: OpSchema) -> None:
    """Validate the node's attributes and add the missing ones (defaults, TensorRT routing) in place."""
    given = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    given = {k: v.decode() if isinstance(v, bytes) else v for k, v in given.items()}
    op_attrs = {k: v for k, v in given.items() if k in schema.attribute_names}
    for name, value in schema.node_attributes(**op_attrs).items():
        if name not in given:
            node.attribute.append(onnx.helper.make_attribute(name, value))


def attach_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of ``model`` carrying the FunctionProto of each edgekit op it uses.

    Also adds the ``edgekit`` opset import, and validates/completes every edgekit node's attributes
    (defaults, ``plugin_namespace``/``aot`` for TensorRT's parser). Function bodies import the model's
    default opset (>= 17). Idempotent; a model without edgekit ops comes back unchanged (copied).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    names = used_ops(out)
    if not names:
        return out
    opset = _default_opset(out)
    if opset < MIN_ONNX_OPSET:
        raise ValueError(f"edgekit plugin functions need ONNX opset >= {MIN_ONNX_OPSET}; the model has {opset}")
    for node in _edgekit_nodes(out):
        _complete_node_attributes(node, OPS[node.op_type].schema)
    present = {(f.domain, f.name) for f in out.functions}
    for name in names:
        if (DOMAIN, name) not in present:
            out.functions.append(OPS[name].build_function(opset))
    if not any(imp.domain == DOMAIN for imp in out.opset_import):
        out.opset_import.append(onnx.helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
    return out


def inline_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Inline edgekit's model-local functions into standard ops (for OpenVINO), attaching them first if needed.

    Every inlined node is named after the call it came from, ``<call name>/<op type>_<k>`` (see
    :func:`inlined_from`): the inliner leaves them unnamed, so per-layer profiles and NNCF's ignored
    scope could not tell a plugin's body from the rest of the graph. The ``edgekit`` opset import is
    dropped once no node uses the domain.
    """
    attached = attach_functions(model)
    inlined = onnx.inliner.inline_local_functions(attached)
    _name_after_calls(attached.graph, inlined.graph)
    if not any(True for _ in _edgekit_nodes(inlined)):
        kept = [imp for imp in inlined.opset_import if imp.domain != DOMAIN]
        del inlined.opset_import[:]
        inlined.opset_import.extend(kept)
    return inlined


def inlined_from(call: str, node: str) -> bool:
    """Whether ``node`` (a node name in an :func:`inline_functions` result) came from the call named ``call``."""
    return node.startswith(call + "/") and "/" not in node[len(call) + 1:]


def _name_after_calls(before: onnx.GraphProto, after: onnx.GraphProto) -> None:
    """Name the nodes the inliner made from each edgekit call in ``before`` as ``<call>/<op type>_<k>``.

    A call's body is what lies between its outputs and its inputs: walk back from its outputs through
    the inlined (new) nodes, never past one of its inputs (that may be another call's output)."""
    original = {tuple(n.output) for n in before.node if n.domain != DOMAIN}
    new = [n for n in after.node if tuple(n.output) not in original]
    producer = {o: n for n in new for o in n.output if o}
    owner: dict[int, str] = {}
    for i, call in enumerate(n for n in before.node if n.domain == DOMAIN):
        label = call.name or f"{call.op_type}_{i}"
        stop = set(call.input)
        todo = [o for o in call.output if o]
        while todo:
            node = producer.get(todo.pop())
            if node is None or id(node) in owner:
                continue
            owner[id(node)] = label
            todo.extend(t for t in node.input if t and t not in stop)
    counts: dict[str, int] = {}
    for node in new:
        label = owner.get(id(node))
        if label is not None:
            k = counts[label] = counts.get(label, -1) + 1
            node.name = f"{label}/{node.op_type}_{k}"


def _source_files(op: PluginOp) -> list[Path]:
    # Python sources only: they define the behaviour, and they are what every install (wheel or editable) has.
    own = sorted(p for p in op.folder.rglob("*.py") if "__pycache__" not in p.parts)
    return own + [_ROOT / name for name in _SHARED_SOURCES if (_ROOT / name).exists()]


def plugin_hashes() -> dict[str, str]:
    """Op name -> sha256 (hex) over its folder's Python sources and the shared plugin modules, path-tagged."""
    hashes = {}
    for name, op in OPS.items():
        digest = hashlib.sha256()
        for path in _source_files(op):
            digest.update(path.relative_to(_ROOT).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        hashes[name] = digest.hexdigest()
    return hashes


def custom_translation_table() -> dict:
    """Every op's entry for ``torch.onnx.export(..., dynamo=True, custom_translation_table=...)``."""
    table = {}
    for op in OPS.values():
        table.update(op.onnx_translation())
    return table


def register_tensorrt() -> None:
    """Register every op with TensorRT's plugin registry (``tensorrt.plugin``). Needs TensorRT >= 10.9
    (ahead-of-time plugins; ``edgekit.targets.tensorrt.device.aot_plugin_problem`` says whether this one has
    them) and Triton at engine build. Wrap the build in ``tensorrt_aot.building_for(target)`` to choose the
    architecture and PTX version the kernels are compiled for (default: this GPU's, lowest PTX for it).

    Raises RuntimeError, one line, on a TensorRT without ahead-of-time plugins (JetPack 6's 10.3): build the
    nodes from their ONNX function bodies there (``inline_functions``), as ``edgekit export`` does.
    """
    import importlib

    import tensorrt

    if not hasattr(tensorrt, "QuickPluginCreationRequest"):
        raise RuntimeError(f"TensorRT {getattr(tensorrt, '__version__', '?')} has no ahead-of-time Python plugins "
                           f"(TensorRT >= 10.9): build edgekit's nodes from their ONNX function bodies instead "
                           f"(edgekit.plugins.inline_functions before parsing)")
    for op in OPS.values():
        importlib.import_module(op.tensorrt_module).register()
