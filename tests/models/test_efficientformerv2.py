"""EfficientFormerV2-S1: timm equivalence (two resolutions), bias tables following loaded weights
(train graph and deploy buffer), deploy equivalence, checkpoint resizing, shapes, ONNX parity."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from edgekit.models import create_model, get_cfg, reparameterize_model
from edgekit.models.efficientformerv2 import Attention2d, Attention2dDownsample, checkpoint_filter_fn
from tests.models.randomize import randomize_bn
from tests.helpers import assert_fp32_parity, cosine, export_onnx, run_onnxruntime

NAME = "efficientformerv2_s1"
NUM_CLASSES = 10  # a small head keeps the tests fast; the trunk is the full S1


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN stats/affine params, bias tables, talking heads and layer scales (all ~trivial at init)."""
    g = torch.Generator().manual_seed(seed)
    randomize_bn(model, g)  # BN first, then the rest from the same stream
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("attention_biases"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith("gamma"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.1)
    return model.eval()


def _timm_ref(seed: int, img_size=(224, 224)) -> nn.Module:
    from edgekit.timm_compat import import_timm

    torch.manual_seed(seed)
    ref = import_timm().create_model(NAME, pretrained=False, num_classes=NUM_CLASSES, img_size=img_size)
    return _randomize(ref, seed=seed + 100)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return _randomize(create_model(NAME, num_classes=NUM_CLASSES))


def test_registry_cfg():
    cfg = get_cfg(NAME)
    assert cfg.family == "efficientformerv2" and cfg.task == "classification"
    assert cfg.input_size == (3, 224, 224) and cfg.size_divisor == 32
    assert cfg.reference == {"timm": NAME}


@pytest.mark.parametrize("img_size", [(224, 224), (128, 192)])
def test_matches_timm(img_size):
    ref = _timm_ref(0, img_size)
    ours = create_model(NAME, img_size=img_size, num_classes=NUM_CLASSES).eval()
    ours.load_state_dict(checkpoint_filter_fn(ref.state_dict(), ours), strict=True)
    x = torch.randn(1, 3, *img_size)
    with torch.no_grad():
        expected, got = ref(x), ours(x)  # timm eval: mean of head and head_dist
    assert got.shape == expected.shape == (1, NUM_CLASSES)
    assert (got - expected).abs().max().item() <= 1e-5


def test_bias_follows_loaded_weights():
    """Train graph gathers the bias per forward; the deploy buffer is gathered from what was loaded."""
    size = (128, 128)  # stage-3/4 attention on a 4x4 grid keeps this test quick
    ref_a, ref_b = _timm_ref(0, size), _timm_ref(1, size)
    x = torch.randn(1, 3, *size)
    ours = create_model(NAME, img_size=size, num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        ours.load_state_dict(checkpoint_filter_fn(ref_a.state_dict(), ours))
        assert (ours(x) - ref_a(x)).abs().max().item() <= 1e-5
        # load other weights into the same eval-mode model: no stale eval-time bias cache
        ours.load_state_dict(checkpoint_filter_fn(ref_b.state_dict(), ours))
        expected = ref_b(x)
        assert (ours(x) - expected).abs().max().item() <= 1e-5

        # reparameterize-time gather: the constant buffer holds the loaded table, indexed for the 4x4 grid
        attn = ours.stages[2].blocks[-1].token_mixer
        table = attn.attention_biases.detach().clone()
        reparameterize_model(ours)
        assert not any("attention_biases" in k for k, _ in ours.named_parameters())
        assert attn.attention_bias.shape == (1, 8, 16, 16)
        dy, dx = 3, 2  # token (0, 0) vs token (3, 2): table offset |dy| * 4 + |dx|
        assert torch.equal(attn.attention_bias[0, :, 0, dy * 4 + dx], table[:, dy * 4 + dx])
        assert torch.equal(attn.attention_bias[0, :, dy * 4 + dx, 0], table[:, dy * 4 + dx])
        assert (ours(x) - expected).abs().max().item() <= 1e-4 * (expected.max() - expected.min()).item()

        # a deploy-layout state dict carries the buffer: it loads into a freshly deployed model
        fresh = reparameterize_model(create_model(NAME, img_size=size, num_classes=NUM_CLASSES))
        fresh.load_state_dict(ours.state_dict(), strict=True)
        assert torch.equal(fresh(x), ours(x))


def test_deploy_equivalence(model):
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = model(x)
        deployed = reparameterize_model(copy.deepcopy(model))
        got = deployed(x)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in deployed.modules())
    assert deployed.head_dist is None and isinstance(deployed.head, nn.Linear)
    assert cosine(got, expected) >= 0.99999
    assert (got - expected).abs().max().item() <= 1e-4 * (expected.max() - expected.min()).item()
    with torch.no_grad():  # idempotent
        assert torch.equal(reparameterize_model(deployed)(x), got)


def test_attention_cores():
    torch.manual_seed(0)
    plain = Attention2dDownsample(32, resolution=(4, 6)).eval()
    q, k, v = torch.randn(2, 8, 6, 16), torch.randn(2, 8, 24, 16), torch.randn(2, 8, 24, 64)
    bias = torch.randn(1, 8, 6, 24)
    expected = torch.softmax(q @ k.transpose(-2, -1) * plain.scale + bias, dim=-1) @ v
    assert torch.allclose(plain._attention(q, k, v, bias), expected, atol=1e-5)

    th = Attention2d(32, resolution=(4, 6)).eval()
    assert th.talking_heads and th.N == 24
    q, k, v = torch.randn(2, 8, 24, 32), torch.randn(2, 8, 24, 32), torch.randn(2, 8, 24, 128)
    bias = torch.randn(1, 8, 24, 24)
    logits = q @ k.transpose(-2, -1) * th.scale + bias
    mixed = torch.einsum("hg,bgij->bhij", th.talking_head1.weight[:, :, 0, 0], logits) \
        + th.talking_head1.bias.view(1, -1, 1, 1)
    probs = torch.einsum("hg,bgij->bhij", th.talking_head2.weight[:, :, 0, 0], mixed.softmax(-1)) \
        + th.talking_head2.bias.view(1, -1, 1, 1)
    with torch.no_grad():
        got = th._attention(q, k, v, bias)
        assert torch.allclose(got, probs @ v, atol=1e-5)
        # with identity talking heads the core reduces to the plain one: the heads mixing is the only difference
        th.talking_head1.weight.copy_(torch.eye(8).view(8, 8, 1, 1)), th.talking_head1.bias.zero_()
        th.talking_head2.weight.copy_(torch.eye(8).view(8, 8, 1, 1)), th.talking_head2.bias.zero_()
        assert torch.allclose(th._attention(q, k, v, bias), torch.softmax(logits, -1) @ v, atol=1e-5)
        assert not torch.allclose(got, torch.softmax(logits, -1) @ v, atol=1e-3)


@pytest.mark.parametrize("dst", [(256, 256), (160, 160)])
def test_checkpoint_resizes_bias_tables(dst):
    """timm 224 weights into a model built for another size: learned offsets are kept, new ones edge-padded."""
    ref = _timm_ref(0)
    ours = create_model(NAME, img_size=dst, num_classes=NUM_CLASSES).eval()
    sd = checkpoint_filter_fn(ref.state_dict(), ours)
    ours.load_state_dict(sd, strict=True)
    key = "stages.3.blocks.5.token_mixer.attention_biases"  # 7x7 grid at 224
    side = dst[0] // 32
    src = ref.state_dict()[key].reshape(8, 7, 7)
    got = sd[key].reshape(8, side, side)
    keep = min(side, 7)
    assert torch.equal(got[:, :keep, :keep], src[:, :keep, :keep])
    if side > 7:
        assert torch.equal(got[:, 7, :7], src[:, 6, :7])
    with torch.no_grad():
        assert ours(torch.randn(1, 3, *dst)).shape == (1, NUM_CLASSES)


@pytest.mark.parametrize("img_size", [None, (128, 192)])
def test_output_shapes(img_size):
    torch.manual_seed(0)
    m = create_model(NAME, img_size=img_size).eval()
    h, w = img_size or (224, 224)
    with torch.no_grad():
        feats = m.forward_features(torch.randn(1, 3, h, w))
        logits = m.forward_head(feats)
    assert feats.shape == (1, 224, h // 32, w // 32)
    assert logits.shape == (1, 1000)
    assert m.edgekit_cfg.input_size == (3, h, w)
    # bias tables are built for this resolution: stage 3 attends on an (H/32, W/32) grid
    assert m.stages[2].blocks[-1].token_mixer.attention_biases.shape == (8, (h // 32) * (w // 32))
    assert m.stages[3].downsample.attn.attention_bias_idxs.shape == ((h // 32) * (w // 32), (h // 16) * (w // 16))


def test_onnx_parity(model):
    deployed = reparameterize_model(copy.deepcopy(model))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = deployed(x).numpy()
    proto = export_onnx(deployed, x, "x", "y")
    ops = [n.op_type for n in proto.graph.node]
    assert "BatchNormalization" not in ops
    assert ops.count("Softmax") == 5  # 2 blocks in stage 3, the downsampling attention, 2 blocks in stage 4
    (got,) = run_onnxruntime(proto, {"x": x.numpy()})
    assert_fp32_parity(got, expected)
