"""EfficientViT-B / EfficientViT-Seg: timm and original-repo checkpoints, linear attention numerics, deploy
equivalence, shapes, ONNX (legacy exporter, opset 17) parity in onnxruntime."""
from __future__ import annotations

import copy
import re

import pytest
import torch
from torch import nn

from edgekit.models import create_model, get_cfg, list_models, reparameterize_model
from edgekit.models.efficientvit import EfficientVitSeg, LiteMLA, checkpoint_filter_fn
from tests.models.randomize import randomize_bn
from tests.helpers import assert_fp32_parity, cosine, export_onnx, run_onnxruntime

CLS = ["efficientvit_b0", "efficientvit_b1", "efficientvit_b2", "efficientvit_b3"]
SEG = {"efficientvit_b0_seg": (19, "cityscapes"), "efficientvit_b1_seg": (19, "cityscapes"),
       "efficientvit_b1_seg_ade": (150, "ade20k")}
NUM_CLASSES = 10  # small classifier heads keep the timm comparisons fast; trunks are full size


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine params (a fresh BN is an identity)."""
    randomize_bn(model, torch.Generator().manual_seed(seed))
    return model.eval()


def _seeded(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return _randomize(create_model(name, **kwargs))


# --------------------------------------------------------------------------------------------- registry

def test_registry_cfgs():
    assert set(CLS) | set(SEG) <= set(list_models())
    for name in CLS:
        cfg = get_cfg(name)
        assert (cfg.family, cfg.task, cfg.input_size, cfg.num_classes) == ("efficientvit", "classification",
                                                                           (3, 224, 224), 1000)
        assert cfg.reference == {"timm": name} and cfg.size_divisor == 32
    for name, (classes, labels) in SEG.items():
        cfg = get_cfg(name)
        assert (cfg.task, cfg.num_classes, cfg.labels, cfg.output_stride) == ("segmentation", classes, labels, 8)
        assert cfg.input_size == (3, 512, 512) and "timm" not in cfg.reference


def test_param_counts():
    # published sizes: B0 3.4M, B1 9.1M, B2 24M, B3 49M; Seg-B0 0.7M, Seg-B1 4.8M
    expected = {"efficientvit_b0": 3_410_008, "efficientvit_b1": 9_102_024, "efficientvit_b0_seg": 706_691,
                "efficientvit_b1_seg": 4_803_443, "efficientvit_b1_seg_ade": 4_791_414}
    for name, n in expected.items():
        assert sum(p.numel() for p in create_model(name).parameters()) == n, name


# --------------------------------------------------------------------------------------------- references

@pytest.mark.parametrize("name", CLS)
def test_matches_timm(name):
    from edgekit.timm_compat import import_timm

    timm = import_timm()
    torch.manual_seed(0)
    ref = _randomize(timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES), seed=1)
    ours = create_model(name, num_classes=NUM_CLASSES).eval()
    ours.load_state_dict(checkpoint_filter_fn(ref.state_dict(), ours), strict=True)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
        assert got.shape == expected.shape == (2, NUM_CLASSES)
        assert (got - expected).abs().max().item() <= 1e-5
        # same trunk features, same pre-logits
        assert (ours.forward_features(x) - ref.forward_features(x)).abs().max().item() <= 1e-5
        pre = ours.forward_head(ours.forward_features(x), pre_logits=True)
        assert (pre - ref.forward_head(ref.forward_features(x), pre_logits=True)).abs().max().item() <= 1e-5


def test_timm_weights_initialise_seg_backbone():
    """A timm classification checkpoint loads into the segmentation model's backbone (head left out)."""
    from edgekit.timm_compat import import_timm

    timm = import_timm()
    torch.manual_seed(0)
    ref = _randomize(timm.create_model("efficientvit_b0", pretrained=False), seed=2)
    seg = create_model("efficientvit_b0_seg").eval()
    sd = checkpoint_filter_fn(ref.state_dict(), seg)
    assert not any(k.startswith("head.") for k in sd)
    missing, unexpected = seg.load_state_dict(sd, strict=False)
    assert not unexpected and missing and all(k.startswith("head.") for k in missing)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = ref.forward_intermediates(x, intermediates_only=True)
        got = seg.forward_features(x)
    assert len(got) == len(expected) == 4
    for e, g in zip(expected, got):
        assert (e - g).abs().max().item() <= 1e-5


_ORIGINAL_CLS_HEAD = {"head.in_conv.": "head.op_list.0.", "head.classifier.0.": "head.op_list.2.linear.",
                      "head.classifier.1.": "head.op_list.2.norm.", "head.classifier.4.": "head.op_list.3.linear."}


def _to_original(key: str, model: nn.Module) -> str:
    """Our key -> the key mit-han-lab/efficientvit uses for the same tensor (written independently of the filter)."""
    key = key.replace("stem.in_conv.", "backbone.input_stem.op_list.0.")
    key = re.sub(r"^stem\.res(\d+)\.", lambda m: f"backbone.input_stem.op_list.{int(m[1]) + 1}.", key)
    key = re.sub(r"^stages\.(\d+)\.blocks\.", r"backbone.stages.\1.op_list.", key)
    for ours, orig in _ORIGINAL_CLS_HEAD.items():
        key = key.replace(ours, orig) if key.startswith(ours) else key
    if isinstance(model, EfficientVitSeg):
        # input_ops 0, 1 (stride 32, 16) are OpSequential([ConvLayer, UpSampleLayer]); input 2 (stride 8) is bare
        key = re.sub(r"^head\.inputs\.([01])\.", r"head.input_ops.\1.op_list.0.", key)
        key = re.sub(r"^head\.inputs\.2\.", "head.input_ops.2.", key)
        key = re.sub(r"^head\.middle\.(\d+)\.", r"head.middle.op_list.\1.", key)
        has_expand = any(k.startswith("head.final_expand.") for k in model.state_dict())
        key = key.replace("head.final_expand.", "head.output_ops.0.op_list.0.")
        key = key.replace("head.classifier.", f"head.output_ops.0.op_list.{1 if has_expand else 0}.")
    return key


@pytest.mark.parametrize("name", ["efficientvit_b0", "efficientvit_b0_seg", "efficientvit_b1_seg_ade"])
def test_original_repo_layout(name):
    """A synthetic state dict in the original repo's layout (random values) converts and loads strictly."""
    model = create_model(name).eval()
    g = torch.Generator().manual_seed(3)
    ours = {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v
            for k, v in model.state_dict().items()}
    original = {_to_original(k, model): v for k, v in ours.items()}
    assert not set(original) & set(ours)  # every key is renamed
    converted = checkpoint_filter_fn({"state_dict": original}, model)
    assert converted.keys() == ours.keys()
    for k, v in converted.items():
        assert torch.equal(v, ours[k]), k
    model.load_state_dict(converted, strict=True)


def test_checkpoint_filter_unwraps_containers():
    model = create_model("efficientvit_b0")
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    assert checkpoint_filter_fn({"model": sd}, model).keys() == model.state_dict().keys()


# --------------------------------------------------------------------------------------------- attention

def _qkv(n: int = 49, d: int = 16, heads: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, heads, n, d, generator=g) for _ in range(3))


def test_linear_attention_matches_definition():
    attn = LiteMLA(64, 64, head_dim=16)
    q, k, v = _qkv()
    qr, kr = q.relu().double(), k.relu().double()
    scores = qr @ kr.transpose(-1, -2)
    expected = (scores @ v.double()) / (scores.sum(-1, keepdim=True) + attn.eps)
    got = attn._linear_attention(q, k, v)
    assert got.shape == q.shape and got.dtype == torch.float32
    assert (got.double() - expected).abs().max().item() <= 1e-5
    assert (attn._quadratic_attention(q, k, v).double() - expected).abs().max().item() <= 1e-5


def test_linear_attention_fp16_computes_in_fp32():
    attn = LiteMLA(64, 64, head_dim=16)
    q, k, v = (t * 30 for t in _qkv(n=4096, seed=1))  # a large normaliser: ~1e5, beyond fp16's 65504
    expected = attn._linear_attention(q, k, v)
    got = attn._linear_attention(q.half(), k.half(), v.half())
    assert got.dtype == torch.float16 and torch.isfinite(got).all()
    assert cosine(got.float(), expected) >= 0.999


def test_linear_attention_eps_guards_empty_kernel():
    attn = LiteMLA(64, 64, head_dim=16)
    q, k, v = _qkv()
    out = attn._linear_attention(-q.abs(), k, v)  # relu(q) == 0: 0 / eps, not 0 / 0
    assert torch.isfinite(out).all() and out.abs().max().item() == 0.0
    out16 = attn._linear_attention(-q.abs().half(), k.half(), v.half())
    assert torch.isfinite(out16).all()
    with pytest.raises(ValueError):
        LiteMLA(64, 64, head_dim=16, eps=1e-15)


def test_attn_impl_is_construction_config():
    def quadratic_flags(model):
        return [m.quadratic for m in model.modules() if isinstance(m, LiteMLA)]

    # b0 (head_dim 16) at 128: stage 2 has 8x8 = 64 tokens (linear), stage 3 has 4x4 = 16 <= 16 (quadratic)
    auto = create_model("efficientvit_b0", img_size=(128, 128), attn_impl="auto")
    assert quadratic_flags(auto) == [False, False, True, True]
    assert not any(quadratic_flags(create_model("efficientvit_b0", img_size=(224, 224), attn_impl="auto")))
    assert not any(quadratic_flags(create_model("efficientvit_b0", img_size=(128, 128))))  # default: linear
    assert all(quadratic_flags(create_model("efficientvit_b0", attn_impl="quadratic")))
    with pytest.raises(ValueError):
        create_model("efficientvit_b0", attn_impl="softmax")
    # both implementations compute the same function
    linear = _seeded("efficientvit_b0", num_classes=NUM_CLASSES)
    quad = create_model("efficientvit_b0", num_classes=NUM_CLASSES, attn_impl="quadratic").eval()
    quad.load_state_dict(linear.state_dict())
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert (linear(x) - quad(x)).abs().max().item() <= 1e-5


# --------------------------------------------------------------------------------------------- deploy, shapes

@pytest.mark.parametrize("name,size", [("efficientvit_b0", (160, 160)), ("efficientvit_b0_seg", (128, 256))])
def test_deploy_equivalence(name, size):
    model = _seeded(name)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = model(x)
        deployed = reparameterize_model(copy.deepcopy(model))
        got = deployed(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
    assert cosine(got, expected) >= 0.99999
    assert (got - expected).abs().max().item() <= 1e-4 * expected.abs().max().item()


@pytest.mark.parametrize("size", [(224, 224), (160, 192)])
def test_classification_shapes(size):
    model = create_model("efficientvit_b0", img_size=size).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 1000)
        assert model.forward_features(torch.randn(1, 3, *size)).shape == (1, 128, size[0] // 32, size[1] // 32)


@pytest.mark.parametrize("name,size", [("efficientvit_b0_seg", (512, 512)), ("efficientvit_b0_seg", (1024, 2048)),
                                       ("efficientvit_b1_seg_ade", (256, 320))])
def test_segmentation_shapes(name, size):
    model = create_model(name, img_size=size).eval()
    classes = get_cfg(name).num_classes
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, classes, size[0] // 8, size[1] // 8)
    assert create_model(name, num_classes=5).eval()(torch.randn(1, 3, 64, 64)).shape == (1, 5, 8, 8)


# --------------------------------------------------------------------------------------------- ONNX

def _onnx_parity(model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        expected = model(x).numpy()
    (got,) = run_onnxruntime(export_onnx(model, x), x.numpy())
    assert_fp32_parity(got, expected)


@pytest.mark.parametrize("name,size,kwargs", [
    ("efficientvit_b0", (224, 224), {}),
    ("efficientvit_b0", (128, 128), {"attn_impl": "auto"}),
    ("efficientvit_b0_seg", (256, 512), {}),
    ("efficientvit_b0_seg", (256, 256), {"upsample_mode": "bicubic"}),
])
def test_onnx_parity(name, size, kwargs):
    torch.manual_seed(0)
    model = reparameterize_model(_randomize(create_model(name, img_size=size, **kwargs)))
    _onnx_parity(model, torch.randn(1, 3, *size))
