"""The onnx-ir passes run between and after rewrite rules: shape inference and the final cleanup.

A leaf module: the rules, the registry and the pipeline all import it, and it imports none of them.
"""
from __future__ import annotations

import onnx
import onnx_ir as ir

# Domains the rules may introduce, with the opset version their nodes are written for.
_DOMAIN_VERSIONS = {"com.microsoft": 1, "edgekit": 1}


def infer_shapes(model: ir.Model) -> None:
    """Re-infer shapes in place (nodes the ONNX schemas do not know keep what the rules set)."""
    from onnx_ir.passes.common import ShapeInferencePass

    _import_used_domains(model)
    try:
        ShapeInferencePass()(model)
    except Exception:  # inference is an aid to later checks, never a reason to fail the export
        pass


def to_proto(model: ir.Model) -> onnx.ModelProto:
    """Drop what the rules left unused, import every domain in use, serialize."""
    from onnx_ir.passes.common import RemoveUnusedFunctionsPass, RemoveUnusedNodesPass, RemoveUnusedOpsetsPass

    RemoveUnusedNodesPass()(model)
    RemoveUnusedFunctionsPass()(model)
    RemoveUnusedOpsetsPass()(model)
    _import_used_domains(model)
    return ir.serde.serialize_model(model)


def _import_used_domains(model: ir.Model) -> None:
    for node in model.graph.all_nodes():
        if node.domain not in model.opset_imports and node.domain in _DOMAIN_VERSIONS:
            model.opset_imports[node.domain] = _DOMAIN_VERSIONS[node.domain]
