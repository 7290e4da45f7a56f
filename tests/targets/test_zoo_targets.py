"""Zoo models through both targets that cannot run here, on the real export path, at small inputs.

- TensorRT: the TensorRT-flavoured ONNX (TRT swaps and rewrites, plugin nodes with their function
  bodies) passes the structural checks and matches PyTorch in ONNX Runtime (``--onnx-only``). One model
  per family in CI (export + rewrites cost ~12 s of CPU per model); ``EDGEKIT_FULL_ZOO=1`` runs every
  model (all passed when this was written: docs/tensorrt.md);
- CoreML: each model converts to an ML Program (fp16) with every tensor at rank <= 5 and no op left in
  fp32 (~15 s of CPU per model); parity is recorded as not measured off macOS. One model per family in CI
  (segmentation ones included), every model with ``EDGEKIT_FULL_ZOO=1``.

Inputs are the smallest multiple of the model's size divisor >= 64 (windows are clamped to small maps).
"""
from __future__ import annotations

import json
import os
import platform

import pytest

import edgekit
from edgekit.models import _registry as reg
from tests.helpers import zoo_test_shape

MODELS = reg.list_models()
# one per family; efficientvit and swin carry the LinearAttention and WindowAttention plugin nodes
TRT_MODELS = MODELS if os.environ.get("EDGEKIT_FULL_ZOO") else [
    m for m in ("efficientvit_b0", "swin_tiny", "segformer_b0", "fastvit_t8", "efficientformerv2_s1") if m in MODELS]
# every family, and a segmentation head of each kind (EfficientViT-Seg, SegFormer's MLP decoder, FPN, SeaFormer's)
COREML_MODELS = MODELS if os.environ.get("EDGEKIT_FULL_ZOO") else [
    m for m in ("efficientvit_b0_seg", "segformer_b0", "swin_tiny", "nextvit_small_seg", "fastvit_t8",
                "efficientformerv2_s1", "seaformer_small_seg", "repvit_m1_1") if m in MODELS]


@pytest.mark.slow
@pytest.mark.parametrize("name", TRT_MODELS)
def test_tensorrt_flavoured_onnx(name, tmp_path):
    bundle = edgekit.export(name, "trt", tmp_path / "b", input_shape=zoo_test_shape(name), calib_size=2,
                            target_options={"onnx_only": True})
    m = bundle.manifest
    report = json.loads((tmp_path / "b" / "tensorrt.json").read_text())
    assert report["structure"]["problems"] == []
    plugin_nodes = report["structure"]["plugin_nodes"]
    if reg.get_cfg(name).family in ("swin", "efficientvit"):  # their attention is a plugin node in TensorRT
        assert plugin_nodes, "the TensorRT swaps/rewrites produced no plugin node"
    assert {p["name"] for p in m["plugins"]} == {p["plugin"].split("::")[1] for p in plugin_nodes}
    parity = m["parity"]
    assert parity["measured"] and "ONNX Runtime" in parity["measured_on"]
    assert parity["passed"], parity  # the default fp32 tolerance (or the model's documented override)


@pytest.mark.slow
@pytest.mark.parametrize("name", COREML_MODELS)
def test_coreml_conversion(name, tmp_path):
    bundle = edgekit.export(name, "coreml", tmp_path / "b", precision="fp16", input_shape=zoo_test_shape(name))
    m = bundle.manifest
    program = m["export"]["program"]
    assert program["max_rank"] <= 5 and program["over_rank"] == [] and program["fallbacks"] == []
    assert program["compute_precision"].get("FLOAT32", 0) == 0 and program["compute_precision"]["FLOAT16"] > 0
    if platform.system() != "Darwin":
        assert m["parity"] == {"measured": False, "gate": "not run (nothing runnable here)",
                               "reason": "CoreML predicts only on macOS and iOS (this is Linux); parity was not measured"}
    assert m["inputs"][0]["name"] == "image" and m["outputs"][0]["name"] == "logits"
