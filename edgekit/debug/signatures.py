"""Why a module diverges: the known failure signatures of reduced precision, read from the fp32 values at and
inside the first diverging module (:mod:`edgekit.debug.locate`) and the graph around it.

| signature | what is seen | repair |
|---|---|---|
| fp16 overflow | a tensor of the module beyond fp16's 65504 in fp32 (a variance, a sum of keys, a softmax input), or inf/NaN in the fp16 output | the module in fp32 |
| fp16 epsilon underflow | a constant the module adds (an epsilon) below 2^-25, which fp16 rounds to 0, so a division meets 0 | the module in fp32 |
| int8 outlier channel | a tensor the module quantizes whose largest channel is many times its median channel: one per-tensor scale spends the 256 steps on it | the module in float |
| reduced-precision rounding | none of the above: the error grows past the tolerance here | the module in float |

Every diagnosis names the module, its ONNX nodes as ``--keep-fp`` patterns, and the cause in one sentence.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx

from edgekit.config import Precision

FP16_MAX = 65504.0
FP16_ZERO = 2.0 ** -25  # below this fp16 rounds a value to 0 (its smallest subnormal is 2^-24)
OUTLIER_RATIO = 16.0  # largest channel / median channel above which one channel owns a per-tensor int8 range


@dataclass(frozen=True)
class Diagnosis:
    kind: str  # fp16_overflow, fp16_epsilon_underflow, int8_outlier_channel, rounding
    module: str
    cause: str
    keep_fp: tuple[str, ...]  # node-name patterns that keep the module in float
    detail: dict

    def to_dict(self) -> dict:
        return {"kind": self.kind, "module": self.module, "cause": self.cause, "keep_fp": list(self.keep_fp),
                "detail": self.detail}


def diagnose(tap, fp32: onnx.ModelProto, ref: list[np.ndarray], got: list[np.ndarray], precision: Precision,
             runtime: str = "onnxruntime", inputs: list[np.ndarray] | None = None) -> Diagnosis:
    """The signature of the divergence at ``tap`` (a :class:`~edgekit.debug.locate.Tap`): ``ref`` / ``got`` are the
    fp32 and candidate values there per image; ``inputs`` (the images) let it look inside the module."""
    patterns = keep_fp_patterns(tap.nodes)
    inner = _inner_values(fp32, tap, runtime, inputs) if inputs else {}
    if precision in (Precision.FP16, Precision.BF16):
        peak_name, peak = max(((n, float(np.abs(v).max(initial=0.0))) for n, v in inner.items()),
                              key=lambda p: p[1], default=("", 0.0))
        nonfinite = int(sum((~np.isfinite(g)).sum() for g in got))
        if peak > FP16_MAX:
            return Diagnosis("fp16_overflow", tap.module,
                             f"fp16 overflow: {peak_name} reaches {peak:.3g} in fp32, beyond fp16's 65504 (keep "
                             f"{tap.module} in fp32)", patterns, {"tensor": peak_name, "fp32_peak": peak})
        eps = _tiny_constants(fp32, tap.nodes)
        if eps:
            name, value = eps[0]
            return Diagnosis("fp16_epsilon_underflow", tap.module,
                             f"fp16 underflow: the constant {value:.3g} added in {name} rounds to 0 in fp16, so a "
                             f"division meets 0 (keep {tap.module} in fp32)", patterns,
                             {"node": name, "value": value, "nonfinite": nonfinite})
        if nonfinite:
            return Diagnosis("fp16_overflow", tap.module,
                             f"fp16 overflow: {nonfinite} values are inf/NaN in fp16 (keep {tap.module} in fp32)",
                             patterns, {"nonfinite": nonfinite})
    if precision is Precision.INT8:
        outlier = _outlier_channel(inner, tap)
        if outlier is not None:
            name, channel, ratio = outlier
            return Diagnosis("int8_outlier_channel", tap.module,
                             f"int8 range dominated by an outlier channel: channel {channel} of {name} is {ratio:.0f}x "
                             f"the median channel's magnitude, so a per-tensor scale leaves the other channels a few "
                             f"steps (keep {tap.module} in float)", patterns,
                             {"tensor": name, "channel": channel, "ratio": ratio})
    return Diagnosis("rounding", tap.module,
                     f"{precision.value} rounding error grows past the tolerance in {tap.module} (keep it in float)",
                     patterns, {})


def outlier_upstream(fp32: onnx.ModelProto, taps, runtime: str, inputs: list[np.ndarray]) -> Diagnosis | None:
    """int8 error that builds up over several modules, none of them past the tolerance on its own: the module
    among ``taps`` whose weighted layer (Conv, MatMul, Gemm) reads the worst outlier-dominated tensor, which a
    per-tensor scale spends its steps on. That module kept in float reads the tensor unquantized."""
    from edgekit.debug.graph_taps import FLOAT_TYPES, run_taps, tensor_types

    types = tensor_types(fp32)
    initializers = {i.name for i in fp32.graph.initializer} | {i.name for i in fp32.graph.input}
    reads: dict[str, list[str]] = {}
    for tap in taps:
        members = set(tap.nodes)
        reads[tap.module] = [n.input[0] for n in fp32.graph.node
                             if n.name in members and n.op_type in _WEIGHTED and n.input
                             and n.input[0] not in initializers and types.get(n.input[0]) in FLOAT_TYPES]
    names = list(dict.fromkeys(t for ts in reads.values() for t in ts))
    if not names:
        return None
    (values,) = run_taps(fp32, names, runtime, {"inference_precision": "f32"}, inputs[:1])
    worst = None
    for tap in taps:
        found = _outlier_channel({n: values[n] for n in reads[tap.module]}, tap)
        if found is not None and (worst is None or found[2] > worst[1][2]):
            worst = (tap, found)
    if worst is None:
        return None
    tap, (name, channel, ratio) = worst
    return Diagnosis("int8_outlier_channel", tap.module,
                     f"int8 range dominated by an outlier channel: channel {channel} of {name}, which {tap.module} "
                     f"reads, is {ratio:.0f}x the median channel's magnitude; the error it leaves builds up "
                     f"downstream (keep {tap.module} in float)", keep_fp_patterns(tap.nodes),
                     {"tensor": name, "channel": channel, "ratio": ratio})


_WEIGHTED = {"Conv", "ConvTranspose", "MatMul", "Gemm"}


def keep_fp_patterns(nodes) -> tuple[str, ...]:
    """fnmatch patterns for a module's nodes: their common name prefix up to a '/', then '*' (one pattern),
    or the names themselves when they share no scope."""
    prefix = os.path.commonprefix(list(nodes))
    prefix = prefix[:prefix.rfind("/") + 1]
    return (prefix + "*",) if prefix.count("/") > 1 else tuple(nodes)


def _inner_values(fp32: onnx.ModelProto, tap, runtime: str, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """fp32 values of every float tensor the module's nodes read or write (first image)."""
    from edgekit.debug.graph_taps import FLOAT_TYPES, run_taps, tensor_types

    types = tensor_types(fp32)
    initializers = {i.name for i in fp32.graph.initializer}
    names = []
    members = set(tap.nodes)
    for node in fp32.graph.node:
        if node.name in members:
            names += [t for t in (*node.input, *node.output) if t and t not in initializers and types.get(t) in FLOAT_TYPES]
    names = [n for n in dict.fromkeys(names) if n not in {i.name for i in fp32.graph.input}]
    if not names:
        return {}
    (values,) = run_taps(fp32, names, runtime, {"inference_precision": "f32"}, inputs[:1])
    return values


def _tiny_constants(fp32: onnx.ModelProto, nodes) -> list[tuple[str, float]]:
    """(node, value) of scalar constants below fp16's zero that an Add of the module adds."""
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in fp32.graph.initializer}
    for node in fp32.graph.node:
        if node.op_type == "Constant" and node.attribute:
            try:
                consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            except Exception:  # noqa: BLE001 - a Constant holding a non-tensor attribute
                continue
    members = set(nodes)
    found = []
    for node in fp32.graph.node:
        if node.name in members and node.op_type in ("Add", "Sum", "Max", "Clip"):
            for i in node.input:
                v = consts.get(i)
                if v is not None and v.size == 1 and 0 < abs(float(v.ravel()[0])) < FP16_ZERO:
                    found.append((node.name, float(v.ravel()[0])))
    return found


def _outlier_channel(values: dict[str, np.ndarray], tap) -> tuple[str, int, float] | None:
    """(tensor, channel, largest / median) of the worst channel outlier among the module's tensors."""
    worst = None
    for name, v in values.items():
        if v.ndim < 2 or v.shape[1] < 4:
            continue
        axis = 1 if v.ndim == 4 else v.ndim - 1  # NCHW maps: channels on axis 1; tokens (B, N, C): the last axis
        per = np.abs(np.moveaxis(v, axis, 0).reshape(v.shape[axis], -1)).max(1).astype(np.float64)
        # a median of (near-)dead channels is floored at 1e-6 of the largest: the ratio stays finite and stable
        median = max(float(np.median(per)), 1e-6 * float(per.max()))
        if median <= 0:
            continue
        ratio = float(per.max() / median)
        if ratio >= OUTLIER_RATIO and (worst is None or ratio > worst[2]):
            worst = (name, int(per.argmax()), ratio)
    return worst
