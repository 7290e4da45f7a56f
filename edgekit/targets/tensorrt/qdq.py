"""Explicit-quantization (Q/DQ) placement, checked against the rules of TensorRT's int8 Q/DQ import.

TensorRT (explicit quantization, the only int8 mode of strongly typed engines) reads a
``QuantizeLinear -> DequantizeLinear`` pair as "this tensor is int8 here" and then fuses: a Conv,
MatMul or Gemm runs in int8 when *both* its data and its weight arrive through a DQ. What it rejects
or quietly runs in float:

- scales that are not build-time constants, or not positive;
- non-zero or unsigned zero points (TensorRT's int8 is symmetric);
- per-channel scales on activations (per-channel is for weights only);
- a Q whose int8 output feeds anything but a DQ (a plugin, for instance, takes fp32/fp16 only);
- a compute op with only one of its two inputs quantized: it runs in float, with the Q/DQ cost.

The first four are problems (the parser fails or the engine differs from the checked ONNX); the last
is a warning with the nodes named.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
_WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1}  # output-channel axis of the weight


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = numpy_helper.to_array(a.t)
    return out


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def check_qdq(model: onnx.ModelProto, report, require: bool = False) -> dict:
    """Check every Q/DQ node and each compute op's quantization; problems/warnings go to ``report``
    (a :class:`~edgekit.targets.tensorrt.flavour.StructureReport`). Returns counts for the manifest."""
    graph = model.graph
    consts = _constants(model)
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    qs = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    dqs = [n for n in graph.node if n.op_type == "DequantizeLinear"]
    outputs = {o.name for o in graph.output}
    per_channel = 0
    for node in qs + dqs:
        where = f"{node.op_type} {node.name!r}"
        scale = consts.get(node.input[1]) if len(node.input) > 1 else None
        if scale is None:
            report.problems.append(f"{where}: scale {node.input[1] if len(node.input) > 1 else ''!r} is not a "
                                   f"constant; TensorRT needs build-time scales")
            continue
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            report.problems.append(f"{where}: scales must be finite and > 0")
        zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zp is not None:
            if zp.dtype == np.int32:
                report.problems.append(f"{where}: an int32-quantized tensor (a quantized bias); TensorRT dequantizes "
                                       f"int8 and keeps biases in float")
            elif zp.dtype != np.int8:
                report.problems.append(f"{where}: zero point is {zp.dtype}; TensorRT's int8 is signed (int8)")
            elif np.any(zp != 0):
                report.problems.append(f"{where}: non-zero zero point; TensorRT's int8 is symmetric (zero point 0)")
        if scale.size > 1:
            per_channel += 1
            data_is_weight = node.op_type == "DequantizeLinear" and node.input[0] in consts
            if not data_is_weight:
                report.problems.append(f"{where}: per-channel scales on an activation; TensorRT quantizes "
                                       f"activations per tensor")
            else:
                for user in consumers.get(node.output[0], []):
                    want = _WEIGHT_AXIS.get(user.op_type)
                    if want is not None and _axis(node) != want:
                        report.problems.append(f"{where}: per-channel axis {_axis(node)} for {user.op_type} "
                                               f"{user.name!r}; the output-channel axis is {want}")
    for q in qs:
        users = consumers.get(q.output[0], [])
        if q.output[0] in outputs or any(u.op_type != "DequantizeLinear" for u in users):
            other = next((u for u in users if u.op_type != "DequantizeLinear"), None)
            what = f"{other.op_type} {other.name!r}" if other else "a graph output"
            report.problems.append(f"QuantizeLinear {q.name!r}: its int8 output feeds {what}, not a "
                                   f"DequantizeLinear")

    def dequantized(tensor: str) -> bool:
        p = producer.get(tensor)
        return p is not None and p.op_type == "DequantizeLinear"

    quantized, half, float_ops = [], [], []
    for n in graph.node:
        if n.op_type not in COMPUTE_OPS:
            continue
        flags = [dequantized(t) for t in n.input[:2]]
        (quantized if all(flags) else half if any(flags) else float_ops).append(n.name)
    if half:
        report.warnings.append(f"{len(half)} compute op(s) with only one input quantized run in float with the Q/DQ "
                               f"cost: {', '.join(half[:3])}{' ...' if len(half) > 3 else ''}")
    if require and not quantized:
        report.problems.append("an int8 model with no quantized Conv/MatMul/Gemm: the quantize step placed no Q/DQ "
                               "pairs TensorRT can fuse")
    return {"quantize": len(qs), "dequantize": len(dqs), "per_channel": per_channel,
            "quantized_compute": len(quantized), "half_quantized_compute": half, "float_compute": len(float_ops)}
