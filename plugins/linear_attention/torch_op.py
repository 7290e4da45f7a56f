"""``linear_attention(q, k, v, eps)``: what a model calls so that its export carries one plugin node.

Three paths, chosen by what is running the model:

- eager: the PyTorch reference (differentiable, any device);
- legacy ONNX export (``torch.onnx.export(..., dynamo=False)``, TorchScript tracing): an autograd.Function
  whose ``symbolic`` writes exactly one ``edgekit::LinearAttention`` node with its attributes;
- torch.export / dynamo (``torch.onnx.export(..., dynamo=True, custom_translation_table=...)``): the
  opaque custom op ``torch.ops.edgekit.linear_attention``; ``onnx_translation()`` maps it to the same node.

Pass ``custom_opsets={"edgekit": 1}`` to the legacy exporter. The model-local function that lets ONNX
Runtime run the node is added afterwards by ``edgekit.plugins.attach_functions``.
"""
# No ``from __future__ import annotations``: torch.library reads the signature's annotations as types.
import functools
import warnings

import torch

from edgekit.plugins.linear_attention import reference
from edgekit.plugins.linear_attention.schema import SCHEMA, output_shape
from edgekit.plugins.op_schema import torchscript_attribute_kwargs

LIBRARY_OP = "edgekit::linear_attention"


@torch.library.custom_op(LIBRARY_OP, mutates_args=())
def _linear_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float, kernel: str) -> torch.Tensor:
    return reference.linear_attention(q, k, v, eps)


@_linear_attention_op.register_fake
def _(q, k, v, eps, kernel):
    return q.new_empty(q.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, eps, _ = inputs
    ctx.save_for_backward(q, k, v)
    ctx.eps = eps


def _backward(ctx, grad):
    # Recompute through the reference: the op is only opaque to tracers, not to autograd.
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(True) for t in ctx.saved_tensors]
        out = reference.linear_attention(*leaves, ctx.eps)
        grads = torch.autograd.grad(out, leaves, grad)
    return (*grads, None, None)


_linear_attention_op.register_autograd(_backward, setup_context=_setup_context)


class _LinearAttentionExport(torch.autograd.Function):
    """Legacy-exporter path: ``symbolic`` is the whole ONNX story; ``forward`` only gives the tracer values."""

    @staticmethod
    def forward(ctx, q, k, v, eps, kernel):
        return reference.linear_attention(q, k, v, eps)

    @staticmethod
    def symbolic(g, q, k, v, eps, kernel):
        attributes = SCHEMA.node_attributes(eps=eps, kernel=kernel)
        out = g.op(f"{SCHEMA.domain}::{SCHEMA.name}", q, k, v, **torchscript_attribute_kwargs(attributes))
        out.setType(q.type())  # the op is unknown to ONNX shape inference: out is q-shaped, q-typed
        return out


def linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6, kernel: str = "relu"
) -> torch.Tensor:
    """q, k, v (B, heads, N, d), before the ReLU kernel -> (B, heads, N, d), dtype of q.

    Attributes are validated here, at the edge, in every path (eps >= 1e-6, kernel "relu").
    """
    attrs = SCHEMA.resolve(eps=eps, kernel=kernel)
    if torch.jit.is_tracing():  # legacy torch.onnx.export
        with warnings.catch_warnings():
            # int() of a traced size only feeds this Python check; nothing enters the graph
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            output_shape(q.shape, k.shape, v.shape)
        return _LinearAttentionExport.apply(q, k, v, attrs["eps"], attrs["kernel"])
    if torch.compiler.is_compiling():  # torch.export / dynamo: shapes may be symbolic, keep the op opaque
        return torch.ops.edgekit.linear_attention(q, k, v, attrs["eps"], attrs["kernel"])
    output_shape(q.shape, k.shape, v.shape)
    return reference.linear_attention(q, k, v, attrs["eps"])


@functools.cache
def _onnx_op():
    from onnxscript.values import Op, Opset

    return Op(Opset(SCHEMA.domain, SCHEMA.version), SCHEMA.name, SCHEMA.onnx_opschema())


def _translate(q, k, v, eps: float, kernel: str):
    return _onnx_op()(q, k, v, **SCHEMA.node_attributes(eps=eps, kernel=kernel))


def onnx_translation() -> dict:
    """``custom_translation_table`` entry for ``torch.onnx.export(..., dynamo=True)``."""
    return {torch.ops.edgekit.linear_attention.default: _translate}
