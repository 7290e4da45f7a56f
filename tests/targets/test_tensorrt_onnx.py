"""The TensorRT-flavoured ONNX: plugin nodes as TensorRT's parser expects them, fp16 islands, ORT parity."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from edgekit.config import Precision
from edgekit.engines.onnxruntime import OrtEngine
from edgekit.targets.tensorrt.flavour import FP32_ISLAND_OPS, check_structure, trt_flavour


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _node(model: onnx.ModelProto, op_type: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.op_type == op_type)


def _set(node: onnx.NodeProto, name: str, value) -> None:
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept)
    if value is not None:
        node.attribute.append(onnx.helper.make_attribute(name, value))


def _run(model: onnx.ModelProto, x: np.ndarray, tmp_path) -> np.ndarray:
    path = tmp_path / "m.onnx"
    onnx.save_model(model, str(path))
    with OrtEngine(path, {}) as engine:  # the stand-in the parity gate runs when no engine can
        return engine.infer({engine.input_names[0]: x})[0]


def test_plugin_nodes_route_to_their_plugins_with_their_fields(plugin_onnx):
    model, _ = plugin_onnx
    report = check_structure(model, Precision.FP32)
    assert report.ok, report.problems
    by_op = {p.op: p for p in report.plugins}
    assert set(by_op) == {"WindowAttention", "LinearAttention"}
    wa = by_op["WindowAttention"]
    assert wa.namespace == "edgekit" and wa.fields == {"scale": pytest.approx(8 ** -0.5), "num_heads": 2}
    assert by_op["LinearAttention"].fields == {"eps": pytest.approx(1e-4), "kernel": "relu"}
    node = _node(model, "WindowAttention")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["plugin_namespace"] == b"edgekit" and attrs["aot"] == 1  # the parser's routing attributes
    functions = {(f.domain, f.name) for f in model.functions}
    assert functions == {("edgekit", "WindowAttention"), ("edgekit", "LinearAttention")}


@pytest.mark.parametrize("mutate,message", [
    (lambda m: _set(_node(m, "WindowAttention"), "plugin_namespace", "trt"), "plugin_namespace='edgekit'"),
    (lambda m: _set(_node(m, "WindowAttention"), "plugin_namespace", None), "plugin_namespace='edgekit'"),
    (lambda m: _set(_node(m, "WindowAttention"), "aot", 0), "aot=1"),
    (lambda m: _set(_node(m, "WindowAttention"), "plugin_version", "2"), "plugin_version"),
    (lambda m: _set(_node(m, "WindowAttention"), "num_heads", None), "num_heads"),
    (lambda m: _set(_node(m, "WindowAttention"), "num_heads", 2.0), "plugin field num_heads is int"),
    (lambda m: _set(_node(m, "LinearAttention"), "eps", 1e-9), "eps"),
    (lambda m: m.functions.pop(0), "no model-local function"),
    (lambda m: setattr(_node(m, "Conv"), "domain", "com.microsoft"), "com.microsoft::Conv"),
])
def test_structure_problems_are_named(plugin_onnx, mutate, message):
    model = _copy(plugin_onnx[0])
    mutate(model)
    report = check_structure(model, Precision.FP32)
    assert not report.ok
    assert any(message in p for p in report.problems), report.problems


def test_flavoured_onnx_runs_in_onnxruntime_through_the_function_bodies(plugin_onnx, tmp_path):
    model, torch_model = plugin_onnx
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x)).numpy()
    out = _run(model, x, tmp_path)
    # fp32 function bodies against the PyTorch reference ops: only summation order differs
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


def test_fp16_flavour_keeps_io_fp32_and_normalisations_in_fp32_islands(tiny_onnx, tmp_path):
    model, torch_model = tiny_onnx
    f16, notes = trt_flavour(model, Precision.FP16)
    report = check_structure(f16, Precision.FP16)
    assert report.ok, report.problems
    producers = {o: n for n in f16.graph.node for o in n.output}
    islands = [n for n in f16.graph.node if n.op_type in FP32_ISLAND_OPS]
    assert any(n.op_type == "LayerNormalization" for n in islands) and "LayerNormalization" in notes[0]
    for n in islands:  # each island is entered through a Cast to fp32 (or a fp32 initializer)
        p = producers.get(n.input[0])
        assert p is not None and p.op_type == "Cast" and p.attribute[0].i == onnx.TensorProto.FLOAT, n.name
    softmax_in = producers[_node(f16, "Softmax").input[0]]
    assert softmax_in.op_type != "Cast"  # softmax stays fp16: TensorRT fuses attention only in fp16/int8
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x)).numpy().ravel()
    out = _run(f16, x, tmp_path).ravel()
    assert out.dtype == np.float32
    cos = float(out @ ref / (np.linalg.norm(out) * np.linalg.norm(ref)))
    assert cos >= 0.999  # the default fp16 tolerance (Tolerance.default)


def test_fp16_flavour_of_plugin_nodes_runs_in_onnxruntime(plugin_onnx, tmp_path):
    model, torch_model = plugin_onnx
    f16, _ = trt_flavour(model, Precision.FP16)
    assert check_structure(f16, Precision.FP16).ok
    x = np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x)).numpy().ravel()
    out = _run(f16, x, tmp_path).ravel()
    cos = float(out @ ref / (np.linalg.norm(out) * np.linalg.norm(ref)))
    assert cos >= 0.999  # the default fp16 tolerance (Tolerance.default)
