"""``window_attention(q, k, v, bias, scale)``: what a model calls so that its export carries one plugin node.

Three paths, chosen by what is running the model:

- eager: the PyTorch reference (differentiable, any device);
- legacy ONNX export (``torch.onnx.export(..., dynamo=False)``, TorchScript tracing): an autograd.Function
  whose ``symbolic`` writes exactly one ``edgekit::WindowAttention`` node with its attributes;
- torch.export / dynamo (``torch.onnx.export(..., dynamo=True, custom_translation_table=...)``): the
  opaque custom op ``torch.ops.edgekit.window_attention``; ``onnx_translation()`` maps it to the same node.

Pass ``custom_opsets={"edgekit": 1}`` to the legacy exporter. The model-local function that lets ONNX
Runtime run the node is added afterwards by ``edgekit.plugins.attach_functions``.
"""
# No ``from __future__ import annotations``: torch.library reads the signature's annotations as types.
import functools
import warnings

import torch

from edgekit.plugins.op_schema import torchscript_attribute_kwargs
from edgekit.plugins.window_attention import reference
from edgekit.plugins.window_attention.schema import SCHEMA, check_inputs

LIBRARY_OP = "edgekit::window_attention"


@torch.library.custom_op(LIBRARY_OP, mutates_args=())
def _window_attention_op(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float, num_heads: int
) -> torch.Tensor:
    return reference.window_attention(q, k, v, bias, scale)


@_window_attention_op.register_fake
def _(q, k, v, bias, scale, num_heads):
    return q.new_empty(q.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, bias, scale, _ = inputs
    ctx.save_for_backward(q, k, v, bias)
    ctx.scale = scale


def _backward(ctx, grad):
    # Recompute through the reference: the op is only opaque to tracers, not to autograd.
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(True) for t in ctx.saved_tensors]
        out = reference.window_attention(*leaves, ctx.scale)
        grads = torch.autograd.grad(out, leaves, grad)
    return (*grads, None, None)


_window_attention_op.register_autograd(_backward, setup_context=_setup_context)


class _WindowAttentionExport(torch.autograd.Function):
    """Legacy-exporter path: ``symbolic`` is the whole ONNX story; ``forward`` only gives the tracer values."""

    @staticmethod
    def forward(ctx, q, k, v, bias, scale, num_heads):
        return reference.window_attention(q, k, v, bias, scale)

    @staticmethod
    def symbolic(g, q, k, v, bias, scale, num_heads):
        attributes = SCHEMA.node_attributes(scale=scale, num_heads=num_heads)
        out = g.op(f"{SCHEMA.domain}::{SCHEMA.name}", q, k, v, bias, **torchscript_attribute_kwargs(attributes))
        out.setType(q.type())  # the op is unknown to ONNX shape inference: out is q-shaped, q-typed
        return out


def window_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float, num_heads: int = None
) -> torch.Tensor:
    """q, k, v (B_, heads, N, d); bias (nW, heads, N, N) -> (B_, heads, N, d), dtype of q.

    ``num_heads`` defaults to ``q.shape[1]``. Attributes are validated here, at the edge, in every path.
    """
    if torch.jit.is_tracing():  # legacy torch.onnx.export
        with warnings.catch_warnings():
            # int() of a traced size only feeds these Python checks; nothing enters the graph
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            attrs = _checked_attributes(q, k, v, bias, scale, num_heads)
        return _WindowAttentionExport.apply(q, k, v, bias, attrs["scale"], attrs["num_heads"])
    if torch.compiler.is_compiling():  # torch.export / dynamo: shapes may be symbolic, keep the op opaque
        attrs = SCHEMA.resolve(scale=scale, num_heads=q.shape[1] if num_heads is None else num_heads)
        return torch.ops.edgekit.window_attention(q, k, v, bias, attrs["scale"], attrs["num_heads"])
    attrs = _checked_attributes(q, k, v, bias, scale, num_heads)
    return reference.window_attention(q, k, v, bias, attrs["scale"])


def _checked_attributes(q, k, v, bias, scale, num_heads) -> dict:
    attrs = SCHEMA.resolve(scale=scale, num_heads=q.shape[1] if num_heads is None else num_heads)
    check_inputs(q.shape, k.shape, v.shape, bias.shape, attrs["num_heads"])
    return attrs


@functools.cache
def _onnx_op():
    from onnxscript.values import Op, Opset

    return Op(Opset(SCHEMA.domain, SCHEMA.version), SCHEMA.name, SCHEMA.onnx_opschema())


def _translate(q, k, v, bias, scale: float, num_heads: int):
    return _onnx_op()(q, k, v, bias, **SCHEMA.node_attributes(scale=scale, num_heads=num_heads))


def onnx_translation() -> dict:
    """``custom_translation_table`` entry for ``torch.onnx.export(..., dynamo=True)``."""
    return {torch.ops.edgekit.window_attention.default: _translate}
