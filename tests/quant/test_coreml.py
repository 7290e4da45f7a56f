"""CoreML int8 through coremltools' optimization API: int8 weights everywhere but the islands."""
from __future__ import annotations

import platform

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def mlmodel():
    ct = pytest.importorskip("coremltools", reason="CoreML int8 needs coremltools (pip install coremltools)")
    from edgekit.stages.onnx_export import prepare_for_deploy
    from scripts.train_digits import tiny_hybrid

    torch.manual_seed(0)
    model = prepare_for_deploy(tiny_hybrid(10))
    traced = torch.jit.trace(model, torch.randn(1, 3, 64, 64))
    return ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(1, 3, 64, 64))], convert_to="mlprogram",
                      minimum_deployment_target=ct.target.iOS16, compute_precision=ct.precision.FLOAT16)


def _ops(model):
    return list(model._mil_program.functions["main"].operations)


def test_islands_in_the_mil_program(mlmodel):
    from edgekit.quant.coreml import coreml_islands

    islands = coreml_islands(mlmodel)
    by_type = {op.name: op.op_type for op in _ops(mlmodel)}
    weighted = [op.name for op in _ops(mlmodel) if op.op_type in ("conv", "linear")]
    assert islands[weighted[0]] == "stem" and islands[weighted[-1]] == "head"
    reasons = sorted(islands.values())
    assert reasons.count("layernorm") == 4 and reasons.count("softmax") == 2 and reasons.count("gelu") == 2
    assert reasons.count("attention_matmul") == 4  # q @ k^T and attn @ v in two blocks
    assert all(by_type[n] == "matmul" for n, r in islands.items() if r == "attention_matmul")


def test_int8_weights_except_stem_and_head(mlmodel):
    from edgekit.quant import coreml_quantize

    q, info = coreml_quantize(mlmodel, weight_threshold=256)
    ops = _ops(q)
    dequant = [op for op in ops if op.op_type.startswith("constexpr_")]
    weighted = [op for op in ops if op.op_type in ("conv", "linear")]
    # 2 stage convs + 8 block linears are int8; the stem conv and the classifier keep fp16 weights
    assert len(weighted) == 12 and len(dequant) == 10
    quantized_weights = {op.outputs[0].name for op in dequant}
    stem, head = weighted[0], weighted[-1]
    assert stem.inputs["weight"].name not in quantized_weights and head.inputs["weight"].name not in quantized_weights
    assert info["weights"].startswith("int8 symmetric per channel") and info["islands"]["stem"]["count"] == 1
    if platform.system() != "Darwin":
        assert info["activations"] == "fp16" and "macOS" in info["notes"][0]


@pytest.mark.macos
@pytest.mark.skipif(platform.system() != "Darwin", reason="activation calibration runs CoreML predictions (macOS)")
def test_w8a8_on_macos(mlmodel):
    from edgekit.quant import coreml_quantize

    data = [{"x": np.random.default_rng(i).standard_normal((1, 3, 64, 64)).astype(np.float32)} for i in range(4)]
    q, info = coreml_quantize(mlmodel, data, weight_threshold=256)
    assert info["activations"].startswith("int8")
    assert any(op.op_type == "quantize" for op in _ops(q))
