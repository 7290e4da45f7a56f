"""ONNX rewrite rules, one per module, each named for what it produces.

Every module exposes ``NAME`` and ``rewrite(model: onnx_ir.Model) -> (count, why_not)`` (in place),
built on onnxscript's pattern rewriter or an onnx-ir pass; per-target order lives in
:mod:`edgekit.rewrite.registry`.
"""
