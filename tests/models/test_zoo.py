"""Every registered model, automatically: forward shape, deploy-mode equivalence, ONNX + ORT parity (the
wider variants of a checked model only with ``EDGEKIT_FULL_ZOO=1``); and edgekit's own export (rewrites, parity
gate) on ONNX Runtime for one model per family in CI, every model with ``EDGEKIT_FULL_ZOO=1``.

Segmentation models run at 256x256 (or the smallest size their divisor allows) to keep CI fast;
their own test files cover 512x512 and 1024x2048.
"""
from __future__ import annotations

import os

import pytest
import torch

from edgekit.models import _registry as reg
from edgekit.models import reparameterize_model
from tests.helpers import PER_FAMILY, assert_fp32_parity, cosine, export_onnx, run_onnxruntime
from tests.models.randomize import randomize_norms

MODELS = reg.list_models()
# the smallest model of each family (test_every_family_is_exported checks that none is missing)
EXPORTED = MODELS if os.environ.get("EDGEKIT_FULL_ZOO") else [m for m in PER_FAMILY if m in MODELS]
# wider or deeper variants, or another head size, of a model the default tier checks with the same code path:
# checked with EDGEKIT_FULL_ZOO=1 (the default tier must stay under 15 minutes on 2 cores)
VARIANTS = ("efficientvit_b2", "efficientvit_b3", "efficientvit_b1_seg_ade", "fastvit_sa12", "mit_b1",
            "segformer_b0_cityscapes", "segformer_b1")
CHECKED = [pytest.param(m, marks=pytest.mark.skipif(
    m in VARIANTS and not os.environ.get("EDGEKIT_FULL_ZOO"),
    reason="a variant of a model checked by default: runs with EDGEKIT_FULL_ZOO=1")) for m in MODELS]


def _size(cfg) -> tuple[int, int]:
    if cfg.task == "classification":
        return tuple(cfg.input_size[1:])
    d = cfg.size_divisor
    side = max(d, -(-256 // d) * d)
    return side, side


def test_registry_has_the_families():
    families = {reg.get_cfg(n).family for n in MODELS}
    assert len(families) >= 8, families
    assert any(reg.get_cfg(n).task == "segmentation" for n in MODELS)


@pytest.mark.parametrize("name", CHECKED)
def test_model(name):
    cfg = reg.get_cfg(name)
    size = _size(cfg)
    torch.manual_seed(0)
    model = reg.create_model(name, img_size=None if size == tuple(cfg.input_size[1:]) else size)
    randomize_norms(model)
    model.eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        train_graph = model(x)
    if cfg.task == "classification":
        assert train_graph.shape == (1, cfg.num_classes)
    else:
        assert train_graph.shape == (1, cfg.num_classes, size[0] // cfg.output_stride, size[1] // cfg.output_stride)
    assert torch.isfinite(train_graph).all()

    reparameterize_model(model)
    with torch.no_grad():
        deploy = model(x)
    assert cosine(train_graph.numpy(), deploy.numpy()) >= 0.99999  # the default fp32 cosine (Tolerance.default)

    proto = export_onnx(model, x)
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node), "deploy mode must merge every BN"
    (out,) = run_onnxruntime(proto, {"input": x.numpy()})
    assert_fp32_parity(out, deploy.numpy())  # the default fp32 tolerance


def test_every_family_is_exported():
    assert {reg.get_cfg(n).family for n in EXPORTED} == {reg.get_cfg(n).family for n in MODELS}


@pytest.mark.parametrize("name", EXPORTED)
def test_edgekit_export_passes_the_parity_gate(name, tmp_path):
    """The real export path (deploy mode, ONNX Runtime's swaps and rules, the parity gate on the bundled
    photographs at the default fp32 tolerance), at the smallest input >= 64 the model's divisor allows."""
    import edgekit

    d = reg.get_cfg(name).size_divisor
    side = max(d, -(-64 // d) * d)
    # three of the bundled photographs: random weights give every image the same kind of output
    manifest = edgekit.export(name, "onnx", tmp_path / "b", input_shape=f"1x3x{side}x{side}", calib_size=3).manifest
    parity = manifest["parity"]
    assert parity["measured"] and parity["passed"], parity
    assert parity["cosine_min"] >= 0.99999 and parity["max_abs_rel"] <= 1e-3
