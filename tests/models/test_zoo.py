"""Every registered model, automatically: forward shape, deploy-mode equivalence, ONNX + ORT parity.

Segmentation models run at 256x256 (or the smallest size their divisor allows) to keep CI fast;
their own test files cover 512x512 and 1024x2048.
"""
from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgekit.models import _registry as reg
from edgekit.models import reparameterize_model
from tests.helpers import cosine
from tests.models.randomize import randomize_norms

MODELS = reg.list_models()


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


@pytest.mark.parametrize("name", MODELS)
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

    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=17, input_names=["input"], output_names=["output"])
    proto = onnx.load_from_string(buf.getvalue())
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node), "deploy mode must merge every BN"
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": x.numpy()})[0]
    ref = deploy.numpy()
    assert cosine(ref, out) >= 0.99999
    assert np.abs(ref - out).max() <= 1e-3 * (ref.max() - ref.min())  # the default fp32 tolerance: max abs <= 1e-3 x range
