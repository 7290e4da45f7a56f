"""Static QDQ quantization of an ONNX model with given activation ranges, using ONNX Runtime's quantizer.

Weights are int8, symmetric, per output channel; activations per tensor with the ranges chosen by
the calibration method (:mod:`edgekit.quant.ranges`). Island nodes are excluded from quantization,
and an island of an op that has int8 kernels reads the float tensor rather than a shared
quantize-dequantize copy, so no runtime can fuse it into an int8 kernel (see
:func:`_float_inputs_for_islands`).

Activation type per target: on x86 CPUs ONNX Runtime's fast int8 kernels are U8S8 (uint8 activations,
int8 weights); its S8S8 default ran slower than fp32 on an AMD EPYC (Zen 4).
TensorRT wants S8S8 with symmetric activations (zero point 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from edgekit.errors import EdgekitFailure
from edgekit.quant.hardswish import int8_hardswish

# ops that get int8 inputs: the weighted layers, which is where int8 is fast. Elementwise ops and
# data movement stay float between them: ONNX Runtime's CPU EP has int8 kernels for few of them, so
# quantizing them only adds Q/DQ pairs (measured in scripts/bench_quant.py).
WEIGHTED_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# ONNX Runtime runs DequantizeLinear -> MatMul / Gemm with no QuantizeLinear after as one int8 kernel writing
# float (MatMulIntegerToFloat, QGemm without an output scale); a Q/DQ pair there would only round the output
# to 8 bits and cost two passes over it. Its Conv has no such kernel (QLinearConv needs the output Q).
# Measured, 1 thread (scripts/bench_quant.py, docs/benchmarks.md): ONNX Runtime int8 of the trained half-width
# Swin at 256 went from 1.15x to 1.44x fp32's speed; OpenVINO (which reads the pair as a FakeQuantize),
# trained Swin-T at 256, 50.1 -> 46.8 ms in edgekit's recipe scoring.
FLOAT_OUTPUT_OPS = ("MatMul", "Gemm")


@dataclass(frozen=True)
class QdqRecipe:
    """How the QDQ graph is written for one runtime."""

    activation: str = "u8"  # "u8" (asymmetric uint8) or "s8" (symmetric int8, zero point 0)
    op_types: tuple[str, ...] = WEIGHTED_OP_TYPES
    per_channel: bool = True
    quantize_outputs: bool = True  # Q/DQ after a quantized layer too (ORT fuses DQ-op-Q into an int8 kernel)
    # ...except after these op types, whose int8 kernels can write float (see FLOAT_OUTPUT_OPS)
    float_output_ops: tuple[str, ...] = ()
    quantize_bias: bool = True  # int32 bias (ORT); TensorRT takes float biases
    float_island_inputs: bool = False  # every island reads float inputs, not only those with int8 kernels
    int8_hardswish: bool = False  # Hardswish between uint8 layers as QLinearAdd + QLinearMul (ONNX Runtime)

    def to_dict(self) -> dict:
        return {"activations": f"{'uint8 asymmetric' if self.activation == 'u8' else 'int8 symmetric'} per tensor",
                "weights": f"int8 symmetric {'per channel' if self.per_channel else 'per tensor'}",
                "quantized_op_types": list(self.op_types),
                **({"float_outputs": list(self.float_output_ops)} if self.quantize_outputs and self.float_output_ops
                   else {}),
                **({"hardswish": "int8 between uint8 layers (QLinearAdd + QLinearMul)"} if self.int8_hardswish
                   else {})}


def quantize_qdq(proto: onnx.ModelProto, ranges: dict[str, tuple[float, float]], exclude: set[str],
                 recipe: QdqRecipe = QdqRecipe()) -> onnx.ModelProto:
    """The QDQ model: ``proto`` with QuantizeLinear/DequantizeLinear around every weighted layer not in
    ``exclude``. ``ranges`` maps activation tensor names to (lo, hi)."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

    symmetric = recipe.activation == "s8"
    data = {}
    for name, (lo, hi) in ranges.items():
        if symmetric:  # zero point 0: the range is symmetric around it
            m = max(abs(lo), abs(hi))
            lo, hi = -m, m
        data[name] = TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
    model = onnx.shape_inference.infer_shapes(proto)
    try:
        quantizer = QDQQuantizer(
            model, recipe.per_channel, False, QuantType.QInt8,
            QuantType.QInt8 if symmetric else QuantType.QUInt8,
            TensorsData(CalibrationMethod.MinMax, data), None, sorted(exclude), list(recipe.op_types),
            {"ActivationSymmetric": symmetric, "WeightSymmetric": True,
             # attention matmuls are islands; this also keeps an unlisted activation x activation MatMul float
             "MatMulConstBOnly": True,
             "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
             "QuantizeBias": recipe.quantize_bias,
             "OpTypesToExcludeOutputQuantization": list(recipe.float_output_ops) if recipe.quantize_outputs
                                                   else list(recipe.op_types)})
        qmodel = quantizer.quantize_model()
    except Exception as e:  # the quantizer raises bare ValueError / KeyError on graphs it cannot handle
        raise EdgekitFailure(f"QDQ quantization failed: {e.__class__.__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}") from None
    qmodel = _float_inputs_for_islands(qmodel, exclude, recipe.float_island_inputs)
    if recipe.int8_hardswish:
        qmodel, _ = int8_hardswish(qmodel, exclude)
    qmodel.ir_version = proto.ir_version
    return qmodel


# ops some runtime has an int8 kernel for: given int8 inputs (and an int8 output) ONNX Runtime, OpenVINO or
# TensorRT may fuse them into one (QLinearConv, QGemm, QLinearMatMul, QLinearSoftmax, QLinearAdd...)
INT8_KERNEL_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Softmax", "Add", "Mul", "Concat", "Sigmoid",
                   "LeakyRelu", "AveragePool", "GlobalAveragePool", "MaxPool", "Resize", "Where", "Split"}


def _float_inputs_for_islands(model: onnx.ModelProto, islands: set[str], every_island: bool) -> onnx.ModelProto:
    """Rewire island inputs from a DequantizeLinear(QuantizeLinear(x)) copy to x itself.

    ONNX Runtime's quantizer quantizes a tensor once for all its consumers. An island of an op with an int8
    kernel (an attention MatMul, Softmax, the stem or head) that shares its input with a quantized layer could
    be fused into that kernel, so it is given the float tensor. Other islands (LayerNorm, GELU, division) have
    no int8 kernel and compute in float either way; they keep the shared copy unless ``every_island``,
    because a float consumer beside the quantize node keeps ONNX Runtime from fusing the producer's output
    (measured: a Swin 30% slower)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.name not in islands or not (every_island or node.op_type in INT8_KERNEL_OPS):
            continue
        for k, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[k] = q.input[0]
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [n for n in model.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear") or n.output[0] in used]
    while len(keep) != len(model.graph.node):  # drop Q/DQ pairs nobody reads any more
        del model.graph.node[:]
        model.graph.node.extend(keep)
        used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        keep = [n for n in model.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear") or n.output[0] in used]
    return model


def _input_kinds(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Per node: "int8" (from DequantizeLinear of an activation), "weight" or "float", per input."""
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    kinds = {}
    for n in model.graph.node:
        ks = []
        for i in n.input:
            if not i or i in inits:
                continue
            p = producer.get(i)
            if p is not None and p.op_type == "DequantizeLinear":
                ks.append("weight" if p.input[0] in inits else "int8")
            elif p is not None and p.op_type == "Constant":
                continue
            else:
                ks.append("float")
        kinds[n.name] = ks
    return kinds


def quantized_nodes(model: onnx.ModelProto) -> set[str]:
    """Nodes a runtime can run as int8 kernels: an op with int8 kernels whose activation inputs are all
    dequantized int8 (a DequantizeLinear of an activation)."""
    kinds = _input_kinds(model)
    return {n.name for n in model.graph.node if n.op_type in INT8_KERNEL_OPS and "int8" in kinds[n.name]
            and "float" not in kinds[n.name]}


def float_nodes(model: onnx.ModelProto) -> set[str]:
    """Nodes of a QDQ model that compute in float (everything but Q/DQ and :func:`quantized_nodes`)."""
    q = quantized_nodes(model)
    return {n.name for n in model.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
            and n.name not in q}
