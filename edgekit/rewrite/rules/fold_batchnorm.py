"""BatchNormalization folded into the Conv / ConvTranspose / Gemm / 2-D MatMul before it.

For user models that were not re-parameterized before export (edgekit's zoo merges its BNs at
``reparameterize()``), an inference-mode BN after a linear op is an affine map per output channel::

    y = Conv(x, W, b) --BatchNormalization(gamma, beta, mean, var, eps)-->
        =>  Conv(x, W * s, (b - mean) * s + beta),  s = gamma / sqrt(var + eps)

Conv, ConvTranspose and Gemm use onnxscript's maintained rules; ``MatMul(x, W) [+ b]`` on a 2-D
input (channels on axis 1, as BatchNorm1d after a Linear) is added here. Checks: weights and BN
statistics are constant initializers not shared with other nodes.

Numerics: weights rescaled once in fp32; differences are rounding (tests: 1e-5 relative).
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern as orp
from onnxscript.rewriter.rules.common import (fuse_batchnorm_into_conv_rule, fuse_batchnorm_into_conv_transpose_rule,
                                              fuse_batchnorm_into_gemm_rule)

from edgekit.rewrite.matching import apply_patterns, const_array, initializer

NAME = "fold_batchnorm"


class _MatMulBatchNorm(orp.RewriteRuleClassBase):
    """``BatchNormalization(MatMul(x, W) [+ b])`` on (N, C) -> ``Gemm(x, W * s, b')``."""

    def __init__(self, with_bias: bool):
        super().__init__(f"MatMulBatchNorm[bias={with_bias}]")
        self.with_bias = with_bias

    def pattern(self, op, x, w, b, gamma, beta, mean, var):
        y = op.MatMul(x, w)
        if self.with_bias:
            y = op.Add(y, b)
        return op.BatchNormalization(y, gamma, beta, mean, var, _allow_other_attributes=True, _outputs=["bn"])

    def check(self, context, x, w, gamma, beta, mean, var, bn, b=None, **_):
        result = orp.MatchResult()
        if x.shape is None or len(x.shape) != 2:
            return result.fail("MatMul input is not 2-D, so BN's channel axis is not the MatMul's output axis")
        for name, value in (("weight", w), ("bias", b), ("gamma", gamma), ("beta", beta), ("mean", mean),
                            ("var", var)):
            if value is None:
                continue
            if const_array(value) is None:
                return result.fail(f"{name} is not a constant")
            if value is w or value is b:
                users = {u for u, _ in value.uses()}
                if len(users) > 1:
                    return result.fail(f"{name} {value.name} is shared with another node")
        if bn.producer().attributes.get_int("training_mode", 0):
            return result.fail("BatchNormalization is in training mode")
        return result

    def rewrite(self, op, x, w, gamma, beta, mean, var, bn, b=None, **_):
        eps = bn.producer().attributes.get_float("epsilon", 1e-5)
        g, be, mu, v = (const_array(t).astype(np.float64) for t in (gamma, beta, mean, var))
        scale = g / np.sqrt(v + eps)
        weight = const_array(w)
        bias = const_array(b).astype(np.float64) if b is not None else np.zeros(weight.shape[1])
        new_w = (weight.astype(np.float64) * scale[None, :]).astype(weight.dtype)
        new_b = ((bias - mu) * scale + be).astype(weight.dtype)
        return op.Gemm(x, initializer(op, new_w, bn, "folded_weight"), initializer(op, new_b, bn, "folded_bias"))


RULES = [fuse_batchnorm_into_conv_rule, fuse_batchnorm_into_conv_transpose_rule, fuse_batchnorm_into_gemm_rule,
         _MatMulBatchNorm.rule(True), _MatMulBatchNorm.rule(False)]


def rewrite(model: ir.Model) -> tuple[int, str]:
    return apply_patterns(model, orp.RewriteRuleSet(RULES, commute=True),
                          "no BatchNormalization after a Conv, ConvTranspose, Gemm or 2-D MatMul")
