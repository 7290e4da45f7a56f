"""Which module swaps and ONNX rules each target runs, in order, and why.

A pipeline is a plain ordered tuple. Every entry names a rule (one module of
``edgekit/rewrite/rules/``, one test file of ``tests/rewrite/``) and says why *this* target runs it:
what the runtime gains (measured by ``scripts/bench_rewrites.py``) or needs. A rule that measured
slower on a target is not in that target's tuple; docs/rewrites.md lists what was left out and why.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx
import onnx_ir as ir
from torch import nn

from edgekit.config import Precision, Target
from edgekit.rewrite.swaps import (adaptive_pool, coreml_block_rank, coreml_fold, coreml_hiera_rank,
                                   coreml_mvitv2_rank, coreml_twins_rank, coreml_window_rank, hf_segformer,
                                   linear_attention, window_attention)
from edgekit.rewrite.rules import (cast_grid_sample_grid, expand_window_bias, fold_attention_bias, fold_batchnorm,
                                   fold_constants, fuse_attention_ort, fuse_gelu, fuse_layer_norm, fuse_linear_attention,
                                   fuse_window_attention, fuse_window_permutation, square_transpose_rank5,
                                   lower_roll, lower_window_rank, remove_redundant_layout, saturate_attention_mask,
                                   split_qkv_heads)


@dataclass(frozen=True)
class Swap:
    name: str
    reason: str
    apply: Callable[[nn.Module], int]  # swaps in place, returns how many modules were swapped
    replaces: str = ""  # the module classes it looks for (said when it swapped none)
    not_for: tuple[tuple[Precision, str], ...] = ()  # precisions that skip this swap, each with why


@dataclass(frozen=True)
class Rule:
    name: str
    reason: str
    rewrite: Callable[[ir.Model], tuple[int, str]]  # rewrites in place -> (count, why it did not apply)
    not_for: tuple[tuple[Precision, str], ...] = ()  # precisions that skip this rule, each with why

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, int, str]:
        """Run on a ModelProto -> (rewritten copy, count, why not). The pipeline uses ``rewrite`` directly."""
        from edgekit.rewrite.ir_passes import to_proto

        ir_model = ir.serde.deserialize_model(model)
        count, why_not = self.rewrite(ir_model)
        return to_proto(ir_model), count, why_not


def _rule(module, reason: str, rewrite: Callable | None = None, not_for: dict[Precision, str] | None = None) -> Rule:
    return Rule(module.NAME, reason, rewrite or module.rewrite, tuple((not_for or {}).items()))


# --- rules shared by several targets, each with the reason it holds everywhere it is listed -------------
_FOLD = _rule(fold_constants, "traced shape arithmetic left symbolic hides every later shape; constants fold once")
_ROLL = _rule(lower_roll, "a roll written as a Gather becomes the Slice+Concat the window rules and fusers expect")
_RANK = _rule(lower_window_rank, "rank-6 window partition/reverse becomes the same copy at rank 4")
_QKV = _rule(split_qkv_heads, "the rank-5 packed-QKV split becomes a channel Split + rank-4 heads (one copy less)")
_BIAS = _rule(fold_attention_bias, "relative position bias + shift mask added once, as one constant, at rank 4")
_LAYOUT = _rule(remove_redundant_layout, "Transpose/Reshape pairs and no-op Reshape/Slice/Pad are copies of nothing")
_BN = _rule(fold_batchnorm, "a BN after a Conv/Gemm is a per-channel affine map: fold it into the weights")
_LN = _rule(fuse_layer_norm, "one LayerNormalization kernel instead of nine nodes (and fp32-safe in TensorRT)")
_MASK = _rule(saturate_attention_mask, "Swin's -100 mask turns into subnormal softmax weights, which x86 computes "
                                       "on several times slower; at -1e4 they are exact zeros, bit-identical (Swin-T "
                                       "fp32 on ONNX Runtime: 1.26-1.34x alone; OpenVINO: within noise on the Intel "
                                       "Xeon measured; docs/rewrites.md)")
_GRID = _rule(cast_grid_sample_grid, "a GridSample with a double grid on a float image (transformers' Mask2Former, "
                                     "traced) has no ONNX Runtime kernel: the model would not load")
_PERM = _rule(fuse_window_permutation, "roll + window partition (and reverse + roll back) as one Gather, one copy "
                                       "instead of Slices, Concats and a transpose (zoo Swin-T fp32, one thread: "
                                       "1.04x ONNX Runtime, 1.07x OpenVINO; docs/rewrites.md)")

_PIPELINES: dict[Target, tuple[Rule, ...]] = {
    Target.ONNX: (
        _FOLD, _GRID, _ROLL, _RANK, _QKV, _BIAS, _LAYOUT, _BN, _LN,
        _rule(fuse_gelu, "com.microsoft.Gelu/FastGelu state the fusion ORT would otherwise have to find at load",
              fuse_gelu.for_domain("com.microsoft")),
        _rule(fuse_attention_ort, "com.microsoft.Attention (QKV projection + softmax attention in one kernel) "
                                  "measured faster than the decomposed block (zoo Swin-T fp32: 1.09-1.14x, "
                                  "docs/rewrites.md); MultiHeadAttention (q, k, v apart) was no faster",
              not_for={Precision.INT8: "its QKV projection would stay float inside the fused op; decomposed, the "
                                       "projection runs as an int8 GEMM"}),
        _PERM, _MASK,
    ),
    Target.OPENVINO: (
        # OpenVINO fuses LayerNorm (MVN), GELU, BN and attention itself; split_qkv_heads measured slower
        # there (its rank-5 QKV split is a fused path), so it is left out
        _FOLD, _ROLL, _RANK, _BIAS, _LAYOUT,
        _rule(expand_window_bias, "OpenVINO's SDPAFusion throws on a per-window bias added through a view (the "
                                  "model does not convert); added per window it converts and fuses all 12 blocks"),
        _PERM, _MASK,
        _rule(square_transpose_rank5, "OpenVINO 2026.4 computes attention's heads <-> tokens swap wrongly when "
                                      "there are as many heads as tokens (timm GC ViT and MobileNetV4-hybrid at 64: "
                                      "cosine 0.99989, 0.94); at rank 5 the swap is exact"),
    ),
    Target.TRT: (
        # _GRID: the flavoured ONNX is checked in ONNX Runtime, which has no kernel for a double grid
        _FOLD, _GRID, _ROLL, _RANK, _QKV, _BIAS, _LAYOUT, _BN, _LN,
        _rule(fuse_gelu, "TensorRT fuses the Erf GELU itself; an ONNX Gelu node exists only from opset 20",
              fuse_gelu.for_domain("")),
        _rule(fuse_window_attention, "the parser maps edgekit::WindowAttention to the registered plugin"),
        _rule(fuse_linear_attention, "the parser maps edgekit::LinearAttention to the registered plugin"),
    ),
    Target.COREML: (
        # CoreML converts the (swapped) torch model; these keep the ONNX of the same bundle within rank 5 too
        _FOLD, _ROLL, _RANK, _QKV, _BIAS, _LAYOUT,
    ),
}


def _swap(module, reason: str, not_for: dict[Precision, str] | None = None) -> Swap:
    return Swap(module.NAME, reason, module.apply, getattr(module, "REPLACES", ""), tuple((not_for or {}).items()))


_HF_EAGER = _swap(hf_segformer, "SDPA traces into an opset-dependent blob; the eager core is what the rules match")
_POOL = _swap(adaptive_pool, "torch.onnx refuses adaptive average pooling to a size that does not divide the input "
                             "(transformers' UperNet on a 2x2 map): two constant matrices instead")
_SWAPS: dict[Target, tuple[Swap, ...]] = {
    Target.ONNX: (
        _HF_EAGER, _POOL,
        _swap(linear_attention, "one exported form for the zoo's and timm's linear attention; ORT runs the plugin's "
                                "function body, within noise of both forms (docs/rewrites.md)",
              not_for={Precision.INT8: "the plugin node is one float island; quantized around the exported form, "
                                       "more of the block runs in int8"}),
        # no window-attention swap: fuse_attention_ort's com.microsoft.Attention (projection included) is faster
    ),
    Target.OPENVINO: (
        _HF_EAGER, _POOL,
        _swap(linear_attention, "one exported form for every source; its inlined function body runs within noise "
                                "of both exported forms (docs/rewrites.md)"),
        Swap(window_attention.NAME, "OpenVINO 2026.4's SDPA fusion throws while compiling the zoo Swin's "
                                    "shifted-window attention at 224 (graph_rewrite.cpp:298, SDPAFusionMatcher); the "
                                    "plugin's inlined function body compiles and matches PyTorch (cosine 1 - 2e-13). "
                                    "Zoo Swin only: timm's converts and fuses without it",
             window_attention.apply_zoo_only, "edgekit Swin WindowAttention"),
    ),
    Target.TRT: (
        _HF_EAGER, _POOL,
        _swap(window_attention, "the exporter writes edgekit::WindowAttention directly; the parser maps it to the "
                                "plugin"),
        _swap(linear_attention, "the exporter writes edgekit::LinearAttention directly, whatever the module's "
                                "normaliser form; the parser maps it to the plugin"),
    ),
    Target.COREML: (
        _HF_EAGER,
        _swap(coreml_window_rank, "timm Swin's rank-6 window partition is refused by CoreML (rank <= 5) where "
                                  "coremltools cannot collapse it; partitioned at rank 4 instead"),
        _swap(coreml_block_rank, "timm NesT's rank-6 block and QKV tensors do not convert (rank <= 5); measured"),
        _swap(coreml_hiera_rank, "transformers Hiera's rank-6 QKV and query-pooling views do not convert (rank <= 5); "
                                 "measured"),
        _swap(coreml_twins_rank, "timm Twins' rank-6 window grouping and QKV views do not convert (rank <= 5); "
                                 "measured"),
        _swap(coreml_fold, "coremltools converts fold (col2im) only at a stride >= its kernel; timm VOLO's outlook "
                           "attention folds 3x3 windows at stride 1-2: a one-hot transposed convolution instead"),
        _swap(coreml_mvitv2_rank, "timm MViTv2's rank-6 relative-position view does not convert (rank <= 5); "
                                  "measured"),
    ),
    Target.EXECUTORCH: (
        _swap(coreml_fold, "ExecuTorch 1.5 fails to run timm VOLO's fold (col2im) at a stride below its kernel "
                           "(Error 0x12 in forward, the compatibility corpus's slimmed VOLO): a one-hot transposed "
                           "convolution instead, which XNNPACK runs"),
    ),
}


def swaps_for(target: Target) -> tuple[Swap, ...]:
    return _SWAPS.get(target, ())


def skip_reason(item: Rule | Swap, precision: Precision | None) -> str | None:
    """Why ``precision`` leaves this rule or swap out, or None when it applies."""
    return dict(item.not_for).get(precision) if precision is not None else None


def rules_for(target: Target, precision: Precision | None = None) -> tuple[Rule, ...]:
    """The target's rules; with ``precision``, without those that precision skips (see :func:`skipped_for`)."""
    return tuple(r for r in _PIPELINES.get(target, ()) if not skip_reason(r, precision))


def skipped_for(target: Target, precision: Precision) -> dict[str, str]:
    """Rules of ``target`` that ``precision`` leaves out -> why."""
    return {r.name: why for r in _PIPELINES.get(target, ()) if (why := skip_reason(r, precision))}
