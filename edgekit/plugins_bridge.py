"""What the core needs from edgekit's plugin ops, without importing their kernels."""
from __future__ import annotations

import onnx

PLUGIN_DOMAIN = "edgekit"


def uses_plugins(model: onnx.ModelProto) -> list[str]:
    return sorted({n.op_type for n in model.graph.node if n.domain == PLUGIN_DOMAIN})


def inline_plugin_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Inline edgekit's model-local functions (for runtimes that do not, such as OpenVINO)."""
    if not uses_plugins(model):
        return model
    from edgekit.plugins import inline_functions

    return inline_functions(model)


def attach_plugin_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with the ONNX function body of each edgekit op it uses (unchanged when it uses none)."""
    if not uses_plugins(model):
        return model
    from edgekit.plugins import attach_functions

    return attach_functions(model)
