"""The softmax-attention core shared by the attention fusions (one pattern, its variants, its constants).

Exports write ``softmax(q k^T * scale + bias) v`` in a few ways; each fusion rule builds its
pattern around :func:`core` and lists the variants as separate rules of one set (an onnxscript
pattern may not *end* in a choice, and its commuted forms cannot carry backtracking choices)::

    scale:  MatMul(Mul(q, s), kT)        (timm, edgekit's zoo: q is scaled first)
            Mul(MatMul(q, kT), s)        (Hugging Face, SeaFormer, EfficientFormer)
            Div(MatMul(q, kT), sqrt(d))  (older code)
    bias:   none
            Add(logits, bias)                                     bias broadcastable to (B, h, N, N)
            Reshape(Add(Reshape(logits, (-1, nW*h, N, N)), bias), (-1, h, N, N))   per-window bias at rank 4
    then    Softmax(axis=-1) -> MatMul(., v)
"""
from __future__ import annotations

import itertools

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite.matching import attr_int, const_array, const_scalar, static_shape

SCALE_FORMS = ("q", "mul", "div")
BIAS_FORMS = ("windowed", "add", "none")  # most specific first
VARIANTS = tuple(itertools.product(SCALE_FORMS, BIAS_FORMS))


def core(op, q, k_t, v, scale, bias, group_shape, head_shape, scale_form: str, bias_form: str):
    """Pattern of ``softmax(q k^T * scale [+ bias]) @ v``; binds ``probs`` (and ``grouped`` when windowed)."""
    if scale_form == "q":
        logits = op.MatMul(op.Mul(q, scale), k_t)
    elif scale_form == "mul":
        logits = op.Mul(op.MatMul(q, k_t), scale)
    else:
        logits = op.Div(op.MatMul(q, k_t), scale)
    if bias_form == "add":
        logits = op.Add(logits, bias)
    elif bias_form == "windowed":
        grouped = op.Reshape(logits, group_shape, _allow_other_attributes=True, _outputs=["grouped"])
        logits = op.Reshape(op.Add(grouped, bias), head_shape, _allow_other_attributes=True)
    probs = op.Softmax(logits, _allow_other_attributes=True, _outputs=["probs"])
    return op.MatMul(probs, v)


def scale_value(scale: ir.Value, scale_form: str) -> float | None:
    s = const_scalar(scale)
    if s is None or s == 0:
        return None
    return 1.0 / s if scale_form == "div" else s


def check_core(result: orp.MatchResult, q: ir.Value, scale: ir.Value, probs: ir.Value,
               scale_form: str) -> tuple[int, int, int, int] | None:
    """Checks every fusion shares; returns q's static (B, heads, N, d) or None after ``result.fail``."""
    shape = static_shape(q)
    if shape is None or len(shape) != 4:
        result.fail(f"q has no static (B, heads, N, d) shape ({shape})")
        return None
    if scale_value(scale, scale_form) is None:
        result.fail("the logit scale is not a constant scalar")
        return None
    if attr_int(probs.producer(), "axis", -1) not in (-1, 3):
        result.fail("the Softmax is not over the keys (last) axis")
        return None
    return shape


def bias_per_window(bias: ir.Value | None, grouped: ir.Value | None, heads: int, nq: int,
                    nk: int) -> np.ndarray | None:
    """The additive bias as (nW, heads, Nq, Nk) (nW = 1 when shared by every batch item), or None.

    ``grouped`` is the (B, nW*heads, Nq, Nk) view of the windowed form.
    """
    if bias is None:
        return None
    b = const_array(bias)
    if b is None:
        return None
    if grouped is not None:
        view = static_shape(grouped)
        if view is None or len(view) != 4 or view[1] % heads or b.size != view[1] * nq * nk:
            return None
        return np.ascontiguousarray(b.reshape(view[1] // heads, heads, nq, nk))
    if b.ndim > 4:
        return None
    b = b.reshape((1,) * (4 - b.ndim) + b.shape)
    if b.shape[1] not in (1, heads) or b.shape[2] not in (1, nq) or b.shape[3] not in (1, nk):
        return None
    return np.ascontiguousarray(np.broadcast_to(b, (b.shape[0], heads, nq, nk)))
