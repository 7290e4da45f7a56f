"""Masked entries of a constant attention bias written as -1e4 instead of Swin's -100.

Swin's shift mask (and timm's, and many padding masks) marks masked logits with a *finite* -100.
After softmax's ``exp(x - max)`` those entries land in fp32's subnormal range (below 1.2e-38, i.e.
``x - max`` between -87 and -104), and x86 CPUs compute on subnormals an order of magnitude
slower: the shifted-window blocks of the zoo's Swin-T ran 3-4x slower than the unshifted ones in
ONNX Runtime's attention kernel, with identical shapes (``edgekit profile``, 1 thread: 9.2 vs 3.3 ms
in stage 1). At -1e4 the exponential underflows to an exact zero instead::

    Softmax(s + bias)           bias entries <= -60  ->  -1e4
    com.microsoft.Attention(..., attention_bias)          (same)
    edgekit::WindowAttention(q, k, v, bias)               (same)

Numerics: an entry at -60 or below carries a softmax weight of about e^(-60 + Δ) relative to the row's
largest (Δ: how far its logit exceeds the row's unmasked maximum, a few units), far under fp32's
resolution of 1.2e-7; measured bit-identical outputs on Swin-T. A bias row with no entry above -60 (a fully masked row,
whose softmax depends on how the -100s differ) is left as it is. -1e4 is finite in fp16 too.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

NAME = "saturate_attention_mask"
MASKED = -60.0  # at or below: a masked entry (its softmax weight is < e^-60 of the row's largest)
SATURATED = -1e4  # exp underflows to exactly 0 (fp32 and fp16), and it is finite in fp16


def _bias_inputs(model: ir.Model):
    """(node, input index) of every additive attention bias feeding a softmax."""
    for node in model.graph:
        if node.op_type == "Attention" and node.domain == "com.microsoft" and len(node.inputs) > 5:
            yield node, 5
        elif node.op_type == "WindowAttention" and node.domain == "edgekit" and len(node.inputs) > 3:
            yield node, 3
        elif node.op_type == "Softmax" and node.domain in ("", "ai.onnx"):
            value = node.inputs[0]
            while value is not None and value.producer() is not None and value.producer().op_type == "Reshape":
                value = value.producer().inputs[0]  # fold_attention_bias adds the bias on a (B, nW*h, N, N) view
            add = value.producer() if value is not None else None
            if add is not None and add.op_type == "Add" and add.domain in ("", "ai.onnx"):
                for k in range(len(add.inputs)):
                    yield add, k


def _saturated(value: ir.Value | None) -> np.ndarray | None:
    """The initializer behind ``value`` with its masked entries saturated, or None when nothing to change."""
    if value is None or value.const_value is None or not value.is_initializer():
        return None
    array = value.const_value.numpy()
    if array.dtype.kind != "f" or array.ndim < 2:
        return None
    masked = array <= MASKED
    if not masked.any() or (masked == (array <= SATURATED)).all():
        return None
    if masked.all(axis=-1).any():  # a fully masked row: its softmax depends on the masked values themselves
        return None
    return np.where(masked, np.asarray(SATURATED, array.dtype), array).astype(array.dtype)


def rewrite(model: ir.Model) -> tuple[int, str]:
    count, done = 0, {}
    for node, k in list(_bias_inputs(model)):
        value = node.inputs[k]
        if value is None:
            continue
        if value.name not in done:
            array = _saturated(value)
            if array is None:
                continue
            name = f"{value.name}/saturated"
            new = ir.Value(name=name, shape=value.shape, type=value.type, const_value=ir.tensor(array, name=name))
            model.graph.register_initializer(new)
            done[value.name] = new
            count += 1
        node.replace_input_with(k, done[value.name])
    return count, "" if count else f"no constant attention bias with masked entries (<= {MASKED:g}) above {SATURATED:g}"
