"""FastViT T8 / SA12: timm and Apple-layout equivalence, deploy equivalence, shapes, ONNX parity."""
from __future__ import annotations

import copy
import re

import pytest
import torch
from torch import nn

from edgekit.models import create_model, get_cfg, reparameterize_model
from edgekit.models.fastvit import Attention, AttentionBlock, RepMixer, checkpoint_filter_fn
from tests.models.randomize import randomize_bn
from tests.helpers import assert_fp32_parity, cosine, export_onnx, run_onnxruntime

NUM_CLASSES = 10  # a small head keeps the tests fast; the trunks are the full variants
VARIANTS = ["fastvit_t8", "fastvit_sa12"]


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm stats/affine params and layer-scale gammas (fresh ones are ~identity / ~0)."""
    g = torch.Generator().manual_seed(seed)
    randomize_bn(model, g)  # BN first, then the rest from the same stream
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.1)
    return model.eval()


def _timm():
    from edgekit.timm_compat import import_timm

    return import_timm()


@pytest.fixture(scope="module", params=VARIANTS)
def model(request) -> nn.Module:
    torch.manual_seed(0)
    return _randomize(create_model(request.param, num_classes=NUM_CLASSES))


def test_registry_cfg():
    for name in VARIANTS:
        cfg = get_cfg(name)
        assert cfg.family == "fastvit" and cfg.task == "classification"
        assert cfg.input_size == (3, 256, 256) and cfg.size_divisor == 32
        assert cfg.reference == {"timm": name}


@pytest.mark.parametrize("name", VARIANTS)
def test_matches_timm(name):
    torch.manual_seed(0)
    ref = _randomize(_timm().create_model(name, pretrained=False, num_classes=NUM_CLASSES), seed=1)
    ours = create_model(name, num_classes=NUM_CLASSES).eval()
    ours.load_state_dict(checkpoint_filter_fn(ref.state_dict(), ours), strict=True)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.randn(1, 3, 128, 128)  # 4x4 tokens in the attention stage
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert got.shape == expected.shape == (1, NUM_CLASSES)
    assert (got - expected).abs().max().item() <= 1e-5


def _to_apple_layout(sd: dict, stage_has_pe: list[bool]) -> dict:
    """timm/zoo keys -> Apple ml-fastvit keys (flat ``network`` Sequential, original branch names)."""
    net_idx, idx = {}, 0  # (stage, part) -> network index
    for s, has_pe in enumerate(stage_has_pe):
        if s > 0:
            net_idx[(s, "proj")], idx = idx, idx + 1
        if has_pe:
            net_idx[(s, "pe")], idx = idx, idx + 1
        net_idx[(s, "blocks")], idx = idx, idx + 1
    renames = [("conv_kxk", "rbr_conv"), ("conv_scale", "rbr_scale"), ("identity", "rbr_skip"),
               ("final_conv", "conv_exp"), ("large_conv", "lkb_origin"), (".mlp.", ".convffn."),
               ("se.fc1", "se.reduce"), ("se.fc2", "se.expand")]
    out = {}
    for k, v in sd.items():
        k = re.sub(r"^stem\.", "patch_embed.", k)
        k = re.sub(r"^head\.fc\.", "head.", k)
        k = re.sub(r"\.gamma$", "", k)
        k = re.sub(r"^stages\.(\d+)\.downsample\.proj\.", lambda m: f"network.{net_idx[(int(m[1]), 'proj')]}.proj.", k)
        k = re.sub(r"^stages\.(\d+)\.pos_emb\.pos_enc\.", lambda m: f"network.{net_idx[(int(m[1]), 'pe')]}.pe.", k)
        k = re.sub(r"^stages\.(\d+)\.blocks\.", lambda m: f"network.{net_idx[(int(m[1]), 'blocks')]}.", k)
        for new, old in renames:
            k = k.replace(new, old)
        out[k] = v
    return {"state_dict": out}


def test_apple_layout_matches_timm_conversion():
    """Apple's layout converts to the same keys and tensors as timm's own converter produces."""
    timm = _timm()
    torch.manual_seed(0)
    ref = timm.create_model("fastvit_sa12", pretrained=False, num_classes=NUM_CLASSES)
    apple = _to_apple_layout(ref.state_dict(), [False, False, False, True])
    assert any(k.startswith("network.6.pe.") for k in apple["state_dict"])  # the SA12 layout, as shipped
    ours_model = create_model("fastvit_sa12", num_classes=NUM_CLASSES)
    ours = checkpoint_filter_fn(apple, ours_model)
    theirs = timm.models.fastvit.checkpoint_filter_fn(apple, ref)
    assert ours.keys() == theirs.keys() == ref.state_dict().keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    ours_model.load_state_dict(ours, strict=True)


def test_deploy_equivalence(model):
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = model(x)
        deployed = reparameterize_model(copy.deepcopy(model))
        got = deployed(x)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in deployed.modules())
    assert all(m.reparam_conv is not None and m.mixer is None for m in deployed.modules() if isinstance(m, RepMixer))
    assert cosine(got, expected) >= 0.99999
    assert (got - expected).abs().max().item() <= 1e-4 * (expected.max() - expected.min()).item()
    with torch.no_grad():  # idempotent
        assert torch.equal(reparameterize_model(deployed)(x), got)


def test_attention_core_contract():
    torch.manual_seed(0)
    attn = Attention(64, head_dim=16).eval()
    q, k, v = torch.randn(2, 4, 9, 16), torch.randn(2, 4, 12, 16), torch.randn(2, 4, 12, 16)
    bias = torch.randn(1, 4, 9, 12)
    expected = torch.softmax(q @ k.transpose(-2, -1) * attn.scale + bias, dim=-1) @ v
    assert torch.allclose(attn._attention(q, k, v, bias), expected, atol=1e-5)
    assert attn._attention(q, k, v).shape == (2, 4, 9, 16)
    # the fused path (training speed) and the explicit path (export) agree
    block = AttentionBlock(64).eval()
    x = torch.randn(1, 64, 5, 7)
    with torch.no_grad():
        explicit = block(x)
        block.token_mixer.fused_attn = True
        fused = block(x)
    assert torch.allclose(fused, explicit, atol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("img_size", [None, (192, 320)])
def test_output_shapes(name, img_size):
    torch.manual_seed(0)
    m = create_model(name, img_size=img_size).eval()
    h, w = img_size or (256, 256)
    with torch.no_grad():
        feats = m.forward_features(torch.randn(1, 3, h, w))
        logits = m.forward_head(feats)
    assert feats.shape == (1, m.num_features, h // 32, w // 32)
    assert logits.shape == (1, 1000)
    assert m.edgekit_cfg.input_size == (3, h, w)


def test_onnx_parity(model):
    deployed = reparameterize_model(copy.deepcopy(model))
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = deployed(x).numpy()
    proto = export_onnx(deployed, x, "x", "y")
    ops = [n.op_type for n in proto.graph.node]
    assert "BatchNormalization" not in ops
    n_attn = sum(isinstance(m, Attention) for m in deployed.modules())
    assert ops.count("Softmax") == n_attn  # one softmax per attention core: SA12 has 2, T8 none
    (got,) = run_onnxruntime(proto, {"x": x.numpy()})
    assert_fp32_parity(got, expected)
