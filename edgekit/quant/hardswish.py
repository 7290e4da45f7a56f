"""Hardswish between uint8 layers, written as int8 ops ONNX Runtime has (QLinearAdd + QLinearMul).

ONNX Runtime has no int8 Hardswish. In a QDQ graph ``Conv -> Q/DQ -> HardSwish -> Q/DQ -> Conv`` it
dequantizes, runs the Hardswish in float (as HardSigmoid + Mul) and quantizes again: three or four
float passes over the largest tensors of a MobileNet-style block, where fp32 fuses Hardswish into the
convolution for free. That made int8 slower than fp32 on EfficientViT (scripts/bench_int8_ceiling.py).
Written as

    hardswish(x) = x * clip(x / 6 + 1/2, 0, 1)
    x / 6                 = DequantizeLinear(x_q, scale / 6, zero_point)   (the same uint8 tensor, another scale)
    clip(. + 1/2, 0, 1)   = QuantizeLinear(. + 1/2, 1/255, 0)             (uint8 saturates at exactly 0 and 1)

the whole block stays int8 between the convolutions: ONNX Runtime fuses ``DQ, DQ -> Add -> Q`` into
QLinearAdd and ``DQ, DQ -> Mul -> Q`` into QLinearMul. The gate is rounded to 1/255 (an error of at
most x / 510, within one output step with the output's own rounding; tests/quant/test_hardswish.py).

Only a Hardswish that reads a per-tensor uint8 DequantizeLinear and whose every reader is a
QuantizeLinear is rewritten: one that feeds a float op (an island, a float depthwise convolution, the
graph output) would pay for the extra ops without the int8 kernels, and ONNX Runtime does not fuse
int8 (S8S8) Add / Mul this way (tested), so there the rewrite would only add float passes.
"""
from __future__ import annotations

from collections.abc import Collection

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.quant.graph import GraphView


def int8_hardswish(model: onnx.ModelProto, keep_float: Collection[str] = ()) -> tuple[onnx.ModelProto, int]:
    """``model`` with every HardSwish between uint8 tensors rewritten (module doc), and how many were.
    Nodes named in ``keep_float`` are left as they are."""
    view = GraphView(model)
    init = {i.name: i for i in model.graph.initializer}
    nodes, added, count = [], [], 0
    for n in model.graph.node:
        pattern = _pattern(n, view, init, keep_float)
        if pattern is None:
            nodes.append(n)
            continue
        dq, scale = pattern
        k = f"{n.name or n.output[0]}/int8"
        added += [numpy_helper.from_array(np.array(scale / 6, np.float32), k + "/scale_6"),
                  numpy_helper.from_array(np.array(128, np.uint8), k + "/half_q"),  # 1/2 exactly
                  numpy_helper.from_array(np.array(0.5 / 128, np.float32), k + "/half_scale"),
                  numpy_helper.from_array(np.array(1 / 255, np.float32), k + "/gate_scale"),
                  numpy_helper.from_array(np.array(0, np.uint8), k + "/zero")]
        nodes += [
            helper.make_node("DequantizeLinear", [dq.input[0], k + "/scale_6", dq.input[2]], [k + "/x_6"],
                             name=k + "/x_6"),
            helper.make_node("DequantizeLinear", [k + "/half_q", k + "/half_scale", k + "/zero"], [k + "/half"],
                             name=k + "/half"),
            helper.make_node("Add", [k + "/x_6", k + "/half"], [k + "/gate"], name=k + "/add"),
            helper.make_node("QuantizeLinear", [k + "/gate", k + "/gate_scale", k + "/zero"], [k + "/gate_q"],
                             name=k + "/gate_q"),
            helper.make_node("DequantizeLinear", [k + "/gate_q", k + "/gate_scale", k + "/zero"], [k + "/gate_dq"],
                             name=k + "/gate_dq"),
            helper.make_node("Mul", [n.input[0], k + "/gate_dq"], list(n.output), name=n.name or k + "/mul"),
        ]
        count += 1
    if count:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        model.graph.initializer.extend(added)
    return model, count


def _pattern(node: onnx.NodeProto, view: GraphView, init: dict, keep_float: Collection[str]):
    """(the DequantizeLinear it reads, its scale) when ``node`` is a HardSwish to rewrite."""
    if node.op_type != "HardSwish" or node.name in keep_float:
        return None
    dq = view.producer.get(node.input[0])
    if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3:
        return None
    if dq.input[1] not in init or dq.input[2] not in init:
        return None
    scale, zero_point = numpy_helper.to_array(init[dq.input[1]]), numpy_helper.to_array(init[dq.input[2]])
    if scale.size != 1 or zero_point.dtype != np.uint8:  # per channel, or int8 / 16-bit codes (module doc)
        return None
    readers = view.consumers.get(node.output[0], [])
    if not readers or node.output[0] in view.outputs or any(r.op_type != "QuantizeLinear" for r in readers):
        return None
    return dq, float(scale.reshape(()))
