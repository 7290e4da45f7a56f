"""TensorRT explicit quantization: a QDQ ONNX with Q/DQ where TensorRT's int8 fusions expect them.

TensorRT reads ``QuantizeLinear -> DequantizeLinear`` as "int8 here" and fuses each DQ into the
layer that consumes it, and the next Q into the layer that produces it. Placement that keeps INT8
at least as fast as FP16 (NVIDIA's explicit-quantization guide, ModelOpt's defaults):

- Q/DQ on the *inputs* of Conv, ConvTranspose, Gemm and MatMul only: activations per tensor,
  weights per output channel, both symmetric int8 (zero point 0, the only kind TensorRT takes);
- no Q/DQ on layer outputs: TensorRT moves the consumer's input Q into the producer, fusing
  Conv + bias + activation + Q; an extra output pair would split those fusions;
- float biases (TensorRT folds them; an int32-quantized bias is rejected);
- a residual Add gets Q/DQ on its skip input when its other input is a quantized layer, so
  TensorRT fuses the Add into that layer's int8 epilogue instead of running it in float;
- islands (LayerNorm, Softmax, attention matmuls, GELU, linear-attention normalizer, first and
  last layer) get no Q/DQ: they run in FP16 (TensorRT's MHA and LayerNorm fusions are FP16).

The engine is built on the user's GPU by the TensorRT target; here the QDQ graph is produced,
checked structurally, and run through ONNX Runtime for its accuracy.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.calib import CalibrationSet
from edgekit.config import Precision
from edgekit.quant.qdq import WEIGHTED_OP_TYPES, QdqRecipe, quantize_qdq

_SHAPE_OPS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten"}
TRT_RECIPE = QdqRecipe(activation="s8", op_types=WEIGHTED_OP_TYPES, per_channel=True, quantize_outputs=False,
                       quantize_bias=False)


def tensorrt_qdq(proto: onnx.ModelProto, calib: CalibrationSet, *, method: str = "entropy", percentile: float = 99.99,
                 keep_fp: tuple[str, ...] = (), default_islands: bool = True, threads: int | None = None,
                 cache: bool = True) -> onnx.ModelProto:
    """The TensorRT-ready QDQ model of the fp32 ``proto``, calibrated on ``calib``.

    method: minmax, percentile, entropy (TensorRT's own calibrator) or mse. keep_fp: node-name
    patterns (fnmatch) or ``op:<OpType>`` kept in float beyond the default islands.
    """
    from edgekit.quant.calibrate import calibrate
    from edgekit.quant.islands import find_islands
    from edgekit.quant.options import Method, QuantOptions

    options = QuantOptions(method=Method.parse(method), percentile=percentile, keep_fp=tuple(keep_fp),
                           default_islands=default_islands, cache=cache)
    ranges, _ = calibrate(proto, calib.inputs, calib.sha256, options, threads)
    keep = {i.node for i in find_islands(proto, (), Precision.INT8, options.keep_fp, default_islands)}
    return trt_qdq_from_ranges(proto, ranges, keep)


def trt_qdq_from_ranges(proto: onnx.ModelProto, ranges: dict[str, tuple[float, float]], keep: set[str]) -> onnx.ModelProto:
    """QDQ placement for TensorRT from calibrated ranges, ``keep`` nodes left in float."""
    model = quantize_qdq(proto, ranges, keep, TRT_RECIPE)
    return _quantize_residual_inputs(model, ranges, keep)


def _quantize_residual_inputs(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]],
                              keep: set[str]) -> onnx.ModelProto:
    """Q/DQ on the skip input of ``Add(layer(x), skip)`` where ``layer`` has int8 inputs."""
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}

    def int8_layer(tensor: str) -> bool:
        p = producer.get(tensor)
        while p is not None and p.op_type in _SHAPE_OPS:  # TensorRT fuses through reshapes of the epilogue
            p = producer.get(p.input[0])
        if p is None or p.op_type not in WEIGHTED_OP_TYPES:
            return False
        src = producer.get(p.input[0])
        return src is not None and src.op_type == "DequantizeLinear"

    new_nodes, new_inits = [], []
    done: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type != "Add" or node.name in keep or len(node.input) != 2 or any(i in inits for i in node.input):
            continue
        a, b = node.input
        if int8_layer(a) == int8_layer(b):
            continue  # both or neither: nothing for TensorRT to fuse the Add into
        skip_idx = 1 if int8_layer(a) else 0
        skip = node.input[skip_idx]
        p = producer.get(skip)
        if (p is not None and p.op_type == "DequantizeLinear") or skip not in ranges:
            continue
        if skip not in done:
            lo, hi = ranges[skip]
            scale = max(abs(lo), abs(hi), 1e-8) / 127.0
            base = f"{skip}_trt_residual"
            new_inits += [numpy_helper.from_array(np.array(scale, np.float32), f"{base}_scale"),
                          numpy_helper.from_array(np.array(0, np.int8), f"{base}_zero_point")]
            new_nodes += [helper.make_node("QuantizeLinear", [skip, f"{base}_scale", f"{base}_zero_point"],
                                           [f"{base}_q"], name=f"{base}_QuantizeLinear"),
                          helper.make_node("DequantizeLinear", [f"{base}_q", f"{base}_scale", f"{base}_zero_point"],
                                           [f"{base}_dq"], name=f"{base}_DequantizeLinear")]
            done[skip] = f"{base}_dq"
        node.input[skip_idx] = done[skip]
    if new_nodes:
        model.graph.initializer.extend(new_inits)
        model.graph.node.extend(new_nodes)
        _toposort(model)
    return model


def _toposort(model: onnx.ModelProto) -> None:
    """Reorder nodes so every input is produced before use (new Q/DQ nodes were appended at the end)."""
    available = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    pending = list(model.graph.node)
    ordered = []
    while pending:
        rest = []
        for n in pending:
            if all(i in available for i in n.input):
                ordered.append(n)
                available.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):  # a cycle or a missing input: leave the remaining order as it was
            ordered.extend(rest)
            break
        pending = rest
    del model.graph.node[:]
    model.graph.node.extend(ordered)
