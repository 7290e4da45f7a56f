"""RepViT-M1.1: timm equivalence, deploy (reparameterized) equivalence, shapes, ONNX parity."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from edgekit.models import create_model, get_cfg, reparameterize_model
from edgekit.models.repvit import checkpoint_filter_fn
from tests.models.randomize import randomize_bn
from tests.helpers import assert_fp32_parity, cosine, export_onnx, run_onnxruntime

NUM_CLASSES = 10  # a small head keeps the tests fast; the trunk is the full M1.1


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine params (fresh BN is an identity)."""
    randomize_bn(model, torch.Generator().manual_seed(seed))
    return model.eval()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return _randomize(create_model("repvit_m1_1", num_classes=NUM_CLASSES))


def test_registry_cfg():
    cfg = get_cfg("repvit_m1_1")
    assert cfg.family == "repvit" and cfg.task == "classification"
    assert cfg.input_size == (3, 224, 224) and cfg.num_classes == 1000
    assert cfg.reference == {"timm": "repvit_m1_1"}


def test_matches_timm():
    from edgekit.timm_compat import import_timm

    timm = import_timm()
    torch.manual_seed(0)
    ref = _randomize(timm.create_model("repvit_m1_1", pretrained=False, num_classes=NUM_CLASSES), seed=1)
    ours = create_model("repvit_m1_1", num_classes=NUM_CLASSES).eval()
    ours.load_state_dict(checkpoint_filter_fn(ref.state_dict(), ours), strict=True)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert got.shape == expected.shape == (2, NUM_CLASSES)
    assert (got - expected).abs().max().item() <= 1e-5
    # the eval output is the mean of the two distillation heads, as in timm
    with torch.no_grad():
        feats = ours.forward_head(ours.forward_features(x), pre_logits=True)
        mean = (ours.head.head(feats) + ours.head.head_dist(feats)) / 2
    assert torch.allclose(mean, got, atol=1e-6)


def test_checkpoint_filter_unwraps_container(model):
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    out = checkpoint_filter_fn({"model": sd}, model)
    assert out.keys() == model.state_dict().keys()


def test_deploy_equivalence(model):
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        expected = model(x)
        deployed = reparameterize_model(copy.deepcopy(model))
        got = deployed(x)
    # no BatchNorm and no parallel branch left: one conv per ConvNorm / RepVggDw, one Linear head
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in deployed.modules())
    assert deployed.head.head_dist is None and isinstance(deployed.head.head.l, nn.Linear)
    assert cosine(got, expected) >= 0.99999
    assert (got - expected).abs().max().item() <= 1e-4 * (expected.max() - expected.min()).item()
    # idempotent: a second pass changes nothing
    with torch.no_grad():
        again = reparameterize_model(deployed)(x)
    assert torch.equal(again, got)


@pytest.mark.parametrize("img_size", [None, (256, 192)])
def test_output_shapes(img_size):
    torch.manual_seed(0)
    m = create_model("repvit_m1_1", img_size=img_size).eval()
    h, w = img_size or (224, 224)
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        feats = m.forward_features(x)
        logits = m.forward_head(feats)
    assert feats.shape == (1, 512, h // 32, w // 32)
    assert logits.shape == (1, 1000)
    assert m.edgekit_cfg.input_size == (3, h, w)


def test_onnx_parity(model):
    deployed = reparameterize_model(copy.deepcopy(model))
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = deployed(x).numpy()
    proto = export_onnx(deployed, x, "x", "y")
    (got,) = run_onnxruntime(proto, {"x": x.numpy()})
    assert_fp32_parity(got, expected)
