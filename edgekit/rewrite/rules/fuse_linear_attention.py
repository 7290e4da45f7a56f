"""EfficientViT's ReLU linear attention -> one ``edgekit::LinearAttention`` node.

Two ways the same math reaches ONNX (q0, k0, v are (B, h, N, d), before the ReLU kernel)::

    normaliser by sums (edgekit's zoo):
        q = Relu(q0), k = Relu(k0);  kv = Transpose(k) @ v;  num = q @ kv
        den = ReduceSum(q * ReduceSum(k, -2), -1) + eps;  out = num / den
    normaliser as a padded column of ones (timm, the original):
        vp = Pad(v, ones column);  o = q @ (Transpose(k) @ vp)
        out = o[..., :-1] / (o[..., -1:] + eps)

    =>  edgekit::LinearAttention(q0, k0, v, eps=eps, kernel="relu")

TensorRT's parser maps the node to the registered plugin (fp32 accumulation of k^T v and of the
normaliser, which overflow in fp16); ONNX Runtime runs the function body. ``eps`` below the
plugin's minimum (1e-6, it underflows in fp16) is reported, not rewritten.

Numerics: the plugin reference computes the sum form in fp32 (tests: 1e-5).
"""
from __future__ import annotations

import onnx_ir as ir
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite.matching import apply_patterns, const_ints, const_scalar, static_shape

NAME = "fuse_linear_attention"
DOMAIN = "edgekit"
MIN_EPS = 1e-6  # edgekit::LinearAttention's schema minimum


class _LinearAttention(orp.RewriteRuleClassBase):
    def __init__(self, form: str):
        super().__init__(f"LinearAttention[{form}]")
        self.form = form  # "sums" or "padded"

    def pattern(self, op, q0, k0, v, eps, pads, one, axes_k, axes_d, s0, s1, s2, s3, s4, s5, s6, s7):
        q, k = op.Relu(q0), op.Relu(k0)
        k_t = op.Transpose(k, perm=[0, 1, 3, 2])
        if self.form == "sums":
            num = op.MatMul(q, op.MatMul(k_t, v))
            k_sum = op.ReduceSum(k, axes_k, keepdims=1)
            den = op.ReduceSum(op.Mul(q, k_sum), axes_d, keepdims=1)
            return op.Div(num, op.Add(den, eps))
        out = op.MatMul(q, op.MatMul(k_t, op.Pad(v, pads, one, _allow_other_attributes=True, _outputs=["padded"])))
        head = op.Slice(out, s0, s1, s2, s3)
        tail = op.Slice(out, s4, s5, s6, s7)
        return op.Div(head, op.Add(tail, eps))

    def check(self, context, q0, k0, v, eps, axes_k=None, axes_d=None, pads=None, one=None, padded=None,
              s0=None, s1=None, s2=None, s3=None, s4=None, s5=None, s6=None, s7=None, **_):
        result = orp.MatchResult()
        shape = static_shape(q0)
        if shape is None or len(shape) != 4 or static_shape(k0) != shape or static_shape(v) != shape:
            return result.fail(f"q, k, v are not one static (B, heads, N, d) shape ({shape})")
        e = const_scalar(eps)
        if e is None:
            return result.fail("eps is not a constant")
        if e < MIN_EPS:
            return result.fail(f"eps {e:g} < {MIN_EPS:g}: below the plugin's minimum (it underflows in fp16)")
        if self.form == "sums":
            if [a % 4 for a in const_ints(axes_k) or []] != [2] or [a % 4 for a in const_ints(axes_d) or []] != [3]:
                return result.fail("the normaliser does not sum k over tokens and q.k over channels")
            return result
        if const_scalar(one) != 1.0 or const_ints(pads) != [0, 0, 0, 0, 0, 0, 0, 1]:
            return result.fail(f"v is not padded with one column of ones (pads {const_ints(pads)})")
        d = shape[3]
        head = (const_ints(s0), const_ints(s1), [a % 4 for a in const_ints(s2) or []])
        tail = (const_ints(s4), [a % 4 for a in const_ints(s6) or []])
        unit_steps = const_ints(s3) == [1] and const_ints(s7) == [1]
        if (head[0] != [0] or head[1] not in ([-1], [d]) or head[2] != [3] or tail[0] not in ([-1], [d])
                or tail[1] != [3] or not unit_steps):
            return result.fail("the output is not split into d channels and the normaliser column")
        return result

    def rewrite(self, op, q0, k0, v, eps, **_):
        out = op.LinearAttention(q0, k0, v, eps=float(const_scalar(eps)), kernel="relu", _domain=DOMAIN)
        out.shape, out.dtype = ir.Shape(static_shape(q0)), q0.dtype
        return out


RULES = [_LinearAttention.rule("sums"), _LinearAttention.rule("padded")]


def rewrite(model: ir.Model) -> tuple[int, str]:
    return apply_patterns(model, RULES, "no ReLU linear attention (Relu q, k; k^T v; normalised by q.sum(k)) in the graph")
