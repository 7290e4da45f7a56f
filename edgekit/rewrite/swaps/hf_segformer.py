"""Hugging Face SegFormer attention routed through its explicit (eager) core before export.

``transformers`` picks SegFormer's attention implementation from ``config._attn_implementation``,
``"sdpa"`` by default; traced for ONNX, SDPA comes out as an opset-dependent decomposition (scale
from a Shape/Sqrt chain, a boolean-mask Where) that no rule can rely on. The eager interface is
``softmax(q k^T * scaling [+ mask]) v`` in plain MatMul/Mul/Softmax/MatMul, the form the attention
rules (and TensorRT's own MHA fusion) match. Same math; the swap changes which function runs.
SegFormer's keys/values are spatially reduced (Nkv < Nq), so no plugin op fits this attention.
"""
from __future__ import annotations

import sys

from torch import nn

NAME = "hf_segformer_eager_attention"
REPLACES = "Hugging Face SegformerAttention"


def apply(model: nn.Module) -> int:
    segformer = sys.modules.get("transformers.models.segformer.modeling_segformer")
    if segformer is None:  # never imported (or transformers not installed): the model cannot contain one
        return 0
    layers = [m for m in model.modules() if isinstance(m, segformer.SegformerAttention)]
    configs = {id(m.config): m.config for m in layers}
    for config in configs.values():
        config._attn_implementation = "eager"
    return len(layers)
