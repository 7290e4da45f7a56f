"""Graph rewrites (ONNX level) and module swaps (torch level), declared per target."""
from edgekit.rewrite.pipeline import RewriteReport, apply_rewrites, apply_swaps

__all__ = ["RewriteReport", "apply_rewrites", "apply_swaps"]
