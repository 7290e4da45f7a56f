"""Next-ViT-S family: timm equivalence, BN merging (deploy), shapes, ONNX export in both modes."""
from __future__ import annotations

import re

import onnx
import pytest
import torch
from torch import nn

from edgekit.models import reparameterize_model
from edgekit.models.nextvit import checkpoint_filter_fn, nextvit_small, nextvit_small_seg
from tests.helpers import assert_fp32_parity, cosine, export_onnx, run_onnxruntime

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def _randomize_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, _BN):
            with torch.no_grad():
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.5)


def _timm():
    from edgekit.timm_compat import import_timm

    return import_timm()


def _export(model: nn.Module, x: torch.Tensor) -> onnx.ModelProto:
    return export_onnx(model, x, "x", "y")


def _run_ort(model: onnx.ModelProto, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(run_onnxruntime(model, x.numpy())[0])


def _assert_parity(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert_fp32_parity(got.numpy(), expected.numpy())


def _max_rank(model: onnx.ModelProto) -> int:
    g = onnx.shape_inference.infer_shapes(model).graph
    assert len(g.value_info) > 50
    ranks = [len(v.type.tensor_type.shape.dim) for v in [*g.value_info, *g.input, *g.output]]
    return max(ranks + [len(t.dims) for t in g.initializer])


# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def timm_ref():
    torch.manual_seed(0)
    ref = _timm().create_model("nextvit_small", pretrained=False, num_classes=10).eval()
    _randomize_bn(ref)
    return ref


@pytest.mark.parametrize("img_size", [(224, 224), (128, 192)])
def test_timm_equivalence(timm_ref, img_size):
    torch.manual_seed(1)
    model = nextvit_small(img_size=img_size, num_classes=10).eval()
    model.load_state_dict(checkpoint_filter_fn(timm_ref.state_dict(), model), strict=True)
    x = torch.randn(1, 3, *img_size)
    with torch.no_grad():
        expected = timm_ref(x)
        assert (model(x) - expected).abs().max().item() <= 1e-5
        # sensitivity check: the spatial-reduction BN of an NTB is really applied
        model.stages[2].blocks[4].e_mhsa.norm.running_mean.add_(1.0)
        assert (model(x) - expected).abs().max().item() > 1e-4


def test_original_layout_and_seg_backbone_init(timm_ref):
    timm_sd = timm_ref.state_dict()
    depths = (3, 4, 10, 3)
    starts = [sum(depths[:i]) for i in range(4)]

    def to_original(k: str) -> str:  # bytedance/Next-ViT names
        k = re.sub(r"^stages\.(\d+)\.blocks\.(\d+)\.",
                   lambda m: f"features.{starts[int(m.group(1))] + int(m.group(2))}.", k)
        return k.replace(".mlp.fc1.", ".mlp.conv1.").replace(".mlp.fc2.", ".mlp.conv2.").replace("head.fc.",
                                                                                                 "proj_head.0.")

    original = {to_original(k): v for k, v in timm_sd.items()}
    assert "features.19.e_mhsa.q.weight" in original and "proj_head.0.weight" in original
    model = nextvit_small(num_classes=10)
    converted = checkpoint_filter_fn({"model": original}, model)
    assert converted.keys() == timm_sd.keys()
    assert all(converted[k] is timm_sd[k] for k in timm_sd)

    seg = nextvit_small_seg(img_size=(256, 256))
    result = seg.load_state_dict(checkpoint_filter_fn(timm_sd, seg), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(k.startswith("decode_head.") for k in result.missing_keys)


@pytest.mark.parametrize("factory,img_size", [(nextvit_small, (128, 128)), (nextvit_small_seg, (256, 256))])
def test_deploy_merges_every_bn(factory, img_size):
    torch.manual_seed(0)
    model = factory(img_size=img_size, num_classes=10).eval()
    _randomize_bn(model)
    x = torch.randn(1, 3, *img_size)
    with torch.no_grad():
        train = model(x)
        reparameterize_model(model)
        deploy = model(x)
        reparameterize_model(model)  # idempotent
        again = model(x)
    assert not any(isinstance(m, _BN) for m in model.modules())
    assert cosine(deploy, train) >= 0.99999
    assert (deploy - train).abs().max().item() <= 1e-4 * train.abs().max().item()
    assert torch.equal(again, deploy)


def test_onnx_export_either_mode_same_outputs():
    """The original code skips unmerged norms under ONNX export; here both modes export correctly."""
    torch.manual_seed(0)
    model = nextvit_small(img_size=(128, 128), num_classes=10).eval()
    _randomize_bn(model)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = model(x)
    unmerged = _export(model, x)
    reparameterize_model(model)
    merged = _export(model, x)
    # the legacy exporter folds conv->BN itself; the pre-norms (BN before the MLP / E-MHSA) remain
    assert sum(n.op_type == "BatchNormalization" for n in unmerged.graph.node) >= 20
    assert not any(n.op_type == "BatchNormalization" for n in merged.graph.node)
    out_unmerged, out_merged = _run_ort(unmerged, x), _run_ort(merged, x)
    _assert_parity(out_unmerged, expected)
    _assert_parity(out_merged, expected)
    _assert_parity(out_merged, out_unmerged)
    assert _max_rank(merged) <= 4


def test_seg_onnx_export_ort_parity():
    torch.manual_seed(0)
    model = nextvit_small_seg(img_size=(256, 256), num_classes=10).eval()
    _randomize_bn(model)
    reparameterize_model(model)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        expected = model(x)
    onnx_model = _export(model, x)
    ops = [n.op_type for n in onnx_model.graph.node]
    assert "BatchNormalization" not in ops and ops.count("Resize") == 6
    assert _max_rank(onnx_model) <= 4
    _assert_parity(_run_ort(onnx_model, x), expected)


def test_output_shapes():
    torch.manual_seed(0)
    with torch.no_grad():
        assert nextvit_small().eval()(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
        assert nextvit_small_seg().eval()(torch.randn(1, 3, 512, 512)).shape == (1, 150, 128, 128)
        seg = nextvit_small_seg(img_size=(128, 192), num_classes=5).eval()
        assert seg(torch.randn(2, 3, 128, 192)).shape == (2, 5, 32, 48)
        with pytest.raises(ValueError):
            seg(torch.randn(1, 3, 256, 256))  # sequence lengths are fixed for 128x192
    with pytest.raises(ValueError):
        nextvit_small(img_size=(200, 224))
