"""The ONNX FunctionProto body of edgekit::WindowAttention in standard ops (opset >= 17).

Stored as a model-local function, it lets ONNX Runtime (which inlines model-local functions) run the very
file TensorRT runs as a plugin. Everything is computed in fp32 and cast back to q's type, like the reference.

    q, k, v, bias --Cast fp32--> logits = (q @ k^T) * scale            (B_, H, N, N)
    logits --Reshape--> (B_/nW, nW, H, N, N) --Add bias (nW, H, N, N)--> --Reshape--> (B_, H, N, N)
    --Softmax(-1)--> @ v --CastLike q--> out

The bias broadcast is how window b meets bias[b % nW] in standard ops: windows are batch-major, so viewing
B_ as (B_/nW, nW) puts window w of every image on bias[w]. Rank 5 at most (CoreML's limit).
"""
from __future__ import annotations

import onnx
import onnx.parser

from edgekit.plugins.op_schema import MIN_ONNX_OPSET
from edgekit.plugins.window_attention.schema import SCHEMA

_BODY = """
<
  domain: "{domain}",
  opset_import: ["" : {opset}]
>
{name} <{attributes}> (q, k, v, bias) => (out)
{{
  q32 = Cast <to = 1> (q)
  k32 = Cast <to = 1> (k)
  v32 = Cast <to = 1> (v)
  bias32 = Cast <to = 1> (bias)
  k32_t = Transpose <perm = [0, 1, 3, 2]> (k32)
  qk = MatMul (q32, k32_t)
  scale_value = Constant <value_float: float = @scale> ()
  logits = Mul (qk, scale_value)
  minus_one = Constant <value_ints = [-1]> ()
  bias_shape = Shape (bias32)
  grouped_shape = Concat <axis = 0> (minus_one, bias_shape)
  grouped = Reshape (logits, grouped_shape)
  grouped_biased = Add (grouped, bias32)
  logits_shape = Shape (logits)
  biased = Reshape (grouped_biased, logits_shape)
  attn = Softmax <axis = -1> (biased)
  out32 = MatMul (attn, v32)
  out = CastLike (out32, q)
}}
"""


def build_function(opset: int = MIN_ONNX_OPSET) -> onnx.FunctionProto:
    """FunctionProto ``edgekit.WindowAttention`` importing the default domain at ``opset`` (>= 17)."""
    if opset < MIN_ONNX_OPSET:
        raise ValueError(f"{SCHEMA.name}: the function body needs ONNX opset >= {MIN_ONNX_OPSET}, got {opset}")
    text = _BODY.format(
        domain=SCHEMA.domain, opset=opset, name=SCHEMA.name, attributes=", ".join(SCHEMA.function_attribute_names())
    )
    return onnx.parser.parse_function(text)
