"""INT8 for CoreML through coremltools' optimization API (``coremltools.optimize.coreml``).

- Weights: int8, symmetric, per output channel (``linear_quantize_weights``): the model file
  shrinks ~2x against fp16 and the Neural Engine reads int8 weights natively (iOS 16 / macOS 13).
- Activations: int8 (``experimental.linear_quantize_activations``, W8A8, iOS 17 / macOS 14) where
  supported: it runs the model on ``sample_data`` to calibrate, which needs CoreML's predictor,
  i.e. macOS. Elsewhere the model keeps fp16 activations and the info says so.
- Islands stay unquantized: the first and last weighted layers (weights), and LayerNorm, Softmax,
  GELU, attention matmuls and the linear-attention division (activations), plus ``keep_fp``
  patterns matched against MIL op names (fnmatch) or ``op:<mil_op_type>``.
"""
from __future__ import annotations

import platform
from fnmatch import fnmatchcase

import numpy as np

_WEIGHTED = {"conv", "conv_transpose", "linear", "matmul"}
_ACTIVATION_ISLAND_TYPES = {"layer_norm": "layernorm", "instance_norm": "layernorm", "softmax": "softmax",
                            "gelu": "gelu", "erf": "gelu"}


def _ops(mlmodel) -> list:
    prog = getattr(mlmodel, "_mil_program", None)
    if prog is None:
        return []
    out = []

    def walk(block):
        for op in block.operations:
            out.append(op)
            for b in getattr(op, "blocks", []):
                walk(b)

    for fn in prog.functions.values():
        walk(fn)
    return out


def _is_const(var) -> bool:
    """A MIL input whose value is known at compile time (a weight, not an activation)."""
    return var is not None and getattr(var, "val", None) is not None


def coreml_islands(mlmodel, keep_fp: tuple[str, ...] = (), default: bool = True) -> dict[str, str]:
    """MIL op name -> island reason (the keys of :data:`edgekit.quant.islands.REASONS`)."""
    ops = _ops(mlmodel)
    islands: dict[str, str] = {}
    if default:
        weighted = [op for op in ops if op.op_type in _WEIGHTED and
                    any(_is_const(v) for k, v in op.inputs.items() if k in ("weight", "y"))]
        if weighted:
            islands[weighted[0].name] = "stem"
            islands.setdefault(weighted[-1].name, "head")
        for op in ops:
            if op.op_type in _ACTIVATION_ISLAND_TYPES:
                islands.setdefault(op.name, _ACTIVATION_ISLAND_TYPES[op.op_type])
            elif op.op_type == "matmul" and not any(_is_const(op.inputs.get(k)) for k in ("x", "y")):
                islands.setdefault(op.name, "attention_matmul")
            elif op.op_type == "real_div" and not _is_const(op.inputs.get("y")):
                islands.setdefault(op.name, "linear_attention")
    for pattern in keep_fp:
        for op in ops:
            if (pattern.startswith("op:") and op.op_type == pattern[3:]) or fnmatchcase(op.name, pattern):
                islands.setdefault(op.name, "user")
    return islands


def coreml_quantize(mlmodel, sample_data: list[dict[str, np.ndarray]] | None = None, *, keep_fp: tuple[str, ...] = (),
                    default_islands: bool = True, weight_threshold: int = 2048, activations: bool | None = None):
    """Quantize a CoreML ML Program to int8; returns ``(mlmodel, info)``.

    sample_data: calibration inputs as CoreML feeds ({input name: array}); activations are
        quantized only with sample data on macOS (``activations=None`` means: when possible).
    weight_threshold: weights with fewer elements stay fp16 (small tensors gain nothing).
    """
    import coremltools.optimize.coreml as cto

    islands = coreml_islands(mlmodel, keep_fp, default_islands)
    skip = {name: None for name in islands}
    notes = []
    can_run = platform.system() == "Darwin"
    want_act = activations if activations is not None else bool(sample_data) and can_run
    act_mode = "fp16"
    if want_act:
        if not sample_data:
            notes.append("activation quantization needs sample_data; activations stay fp16")
        elif not can_run:
            notes.append(f"activation quantization runs the model to calibrate, which CoreML can only do on macOS "
                         f"(this is {platform.system()}); activations stay fp16")
        else:
            from coremltools.optimize.coreml.experimental import OpActivationLinearQuantizerConfig, linear_quantize_activations

            config = cto.OptimizationConfig(global_config=OpActivationLinearQuantizerConfig(mode="linear_symmetric"),
                                            op_name_configs=skip)
            mlmodel = linear_quantize_activations(mlmodel, config, sample_data)
            act_mode = "int8 symmetric per tensor (W8A8)"
    elif activations is None and not can_run:
        notes.append(f"activations stay fp16: calibrating them needs CoreML predictions (macOS; this is {platform.system()})")
    weight_cfg = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                             weight_threshold=weight_threshold)
    # the weight pass skips only weight islands: activation islands (LayerNorm, Softmax...) have no int8-worth
    # weights, and a None config on them conflicts when coremltools has deduplicated one of their small
    # constants with a quantized layer's (e.g. a LayerNorm beta equal to a linear bias)
    weight_skip = {name: None for name, reason in islands.items() if reason in ("stem", "head", "user")}
    mlmodel = cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=weight_cfg,
                                                                          op_name_configs=weight_skip))
    from edgekit.quant.islands import REASONS

    by_reason: dict[str, dict] = {}
    for name, reason in islands.items():
        entry = by_reason.setdefault(reason, {"why": REASONS[reason], "count": 0, "nodes": []})
        entry["count"] += 1
        entry["nodes"].append(name)
    info = {"precision": "int8", "tool": "coremltools.optimize.coreml",
            "weights": f"int8 symmetric per channel (tensors >= {weight_threshold} elements)",
            "activations": act_mode, "islands": by_reason, "keep_fp_patterns": list(keep_fp), "notes": notes,
            "summary": f"CoreML int8 weights, {act_mode} activations; {len(islands)} ops kept in float"}
    return mlmodel, info
