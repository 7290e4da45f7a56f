"""The ONNX FunctionProto body of edgekit::LinearAttention in standard ops (opset >= 17).

Stored as a model-local function, it lets ONNX Runtime (which inlines model-local functions) run the very
file TensorRT runs as a plugin. Computed in fp32 and cast back to q's type, like the reference:

    q, k --Cast fp32, Relu-->   v --Cast fp32-->
    kv   = k^T @ v                                   (B, H, d, d)
    ksum = ReduceSum(k, axis N, keepdims)            (B, H, 1, d)
    out  = (q @ kv) / (ReduceSum(q * ksum, axis d, keepdims) + eps)  --CastLike q-->
"""
from __future__ import annotations

import onnx
import onnx.parser

from edgekit.plugins.linear_attention.schema import SCHEMA
from edgekit.plugins.op_schema import MIN_ONNX_OPSET

_BODY = """
<
  domain: "{domain}",
  opset_import: ["" : {opset}]
>
{name} <{attributes}> (q, k, v) => (out)
{{
  q32 = Cast <to = 1> (q)
  k32 = Cast <to = 1> (k)
  v32 = Cast <to = 1> (v)
  q_pos = Relu (q32)
  k_pos = Relu (k32)
  k_pos_t = Transpose <perm = [0, 1, 3, 2]> (k_pos)
  kv = MatMul (k_pos_t, v32)
  numerator = MatMul (q_pos, kv)
  token_axis = Constant <value_ints = [-2]> ()
  k_sum = ReduceSum <keepdims = 1> (k_pos, token_axis)
  q_k_sum = Mul (q_pos, k_sum)
  channel_axis = Constant <value_ints = [-1]> ()
  denominator = ReduceSum <keepdims = 1> (q_k_sum, channel_axis)
  eps_value = Constant <value_float: float = @eps> ()
  denominator_eps = Add (denominator, eps_value)
  out32 = Div (numerator, denominator_eps)
  out = CastLike (out32, q)
}}
"""


def build_function(opset: int = MIN_ONNX_OPSET) -> onnx.FunctionProto:
    """FunctionProto ``edgekit.LinearAttention`` importing the default domain at ``opset`` (>= 17).

    ``eps`` must be on the node (the torch export always writes it): a FunctionProto attribute default
    would need IR 9 and the parser's default syntax, and buys nothing here.
    """
    if opset < MIN_ONNX_OPSET:
        raise ValueError(f"{SCHEMA.name}: the function body needs ONNX opset >= {MIN_ONNX_OPSET}, got {opset}")
    text = _BODY.format(
        domain=SCHEMA.domain, opset=opset, name=SCHEMA.name, attributes=", ".join(SCHEMA.function_attribute_names())
    )
    return onnx.parser.parse_function(text)
