"""SegFormer / MiT: Hugging Face equivalence, deploy (decoder merge) equivalence, shapes, ONNX parity."""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from edgekit.models import create_model, get_cfg, reparameterize_model
from edgekit.models.segformer import SegFormer, checkpoint_filter_fn
from tests.helpers import assert_fp32_parity, cosine, export_onnx, run_onnxruntime

transformers = pytest.importorskip("transformers")

_HF_ARCHS = {
    "b0": dict(hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2], decoder_hidden_size=256),
    "b1": dict(hidden_sizes=[64, 128, 320, 512], depths=[2, 2, 2, 2], decoder_hidden_size=256),
}


@torch.no_grad()
def _randomize(model: nn.Module) -> nn.Module:
    """Weights at a 1/sqrt(fan_in) scale, non-trivial norms and BN statistics, so the logits are O(1)
    (the references' own init gives ~1e-2 logits, which would make a 1e-5 check meaningless)."""
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
        elif name.endswith("weight"):
            p.uniform_(0.5, 1.5)
        else:
            p.normal_(0.0, 0.1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _hf_model(arch: str, segmentation: bool, num_labels: int):
    cfg = transformers.SegformerConfig(**_HF_ARCHS[arch], num_labels=num_labels, attn_implementation="eager")
    if segmentation:
        cls = transformers.SegformerForSemanticSegmentation
    else:
        cls = transformers.SegformerForImageClassification
    return _randomize(cls(cfg))


@pytest.mark.parametrize("name,arch,num_labels,size", [
    ("segformer_b0", "b0", 150, (128, 96)),
    ("segformer_b1", "b1", 150, (64, 64)),
    ("mit_b0", "b0", 1000, (96, 64)),
    ("mit_b1", "b1", 1000, (64, 64)),
])
def test_matches_huggingface(name, arch, num_labels, size):
    torch.manual_seed(0)
    ref = _hf_model(arch, name.startswith("segformer"), num_labels)
    model = create_model(name).eval()
    model.load_state_dict(checkpoint_filter_fn(ref.state_dict(), model), strict=True)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = ref(pixel_values=x).logits
        out = model(x)
    assert out.shape == expected.shape
    assert expected.abs().max() > 0.5  # the check below is not vacuous
    assert (out - expected).abs().max().item() <= 1e-5


# transformers v5 name -> name in Hub files (transformers v4), to check the converter on the layout
# that ``nvidia/segformer-*`` checkpoints are stored in.
_V5_TO_V4 = (
    (r"^segformer\.stages\.(\d+)\.patch_embeddings\.", r"segformer.encoder.patch_embeddings.\1."),
    (r"^segformer\.stages\.(\d+)\.blocks\.", r"segformer.encoder.block.\1."),
    (r"^segformer\.stages\.(\d+)\.layer_norm\.", r"segformer.encoder.layer_norm.\1."),
    (r"attention\.q_proj", "attention.self.query"),
    (r"attention\.k_proj", "attention.self.key"),
    (r"attention\.v_proj", "attention.self.value"),
    (r"attention\.sequence_reduction\.sequence_reduction", "attention.self.sr"),
    (r"attention\.sequence_reduction\.layer_norm", "attention.self.layer_norm"),
    (r"attention\.o_proj", "attention.output.dense"),
    (r"mlp\.fc1", "mlp.dense1"),
    (r"mlp\.fc2", "mlp.dense2"),
    (r"layernorm_before", "layer_norm_1"),
    (r"layernorm_after", "layer_norm_2"),
    (r"^decode_head\.linear_projections\.", "decode_head.linear_c."),
)


def _to_v4(state_dict: dict) -> dict:
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in _V5_TO_V4:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def test_converter_accepts_hub_layout_and_zoo_layout():
    torch.manual_seed(1)
    ref = _hf_model("b0", True, 19)
    v4 = _to_v4(ref.state_dict())
    assert "segformer.encoder.block.0.0.attention.self.query.weight" in v4
    assert "decode_head.linear_c.3.proj.weight" in v4
    model = create_model("segformer_b0_cityscapes").eval()
    converted = checkpoint_filter_fn(v4, model)
    model.load_state_dict(converted, strict=True)
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        assert (model(x) - ref(pixel_values=x).logits).abs().max().item() <= 1e-5
    # K rows first in the fused kv, as the attention's chunk expects
    kv = converted["encoder.stages.0.blocks.0.attn.kv.weight"]
    assert torch.equal(kv[:32], v4["segformer.encoder.block.0.0.attention.self.key.weight"])
    # a zoo state dict is returned as is
    assert checkpoint_filter_fn(model.state_dict(), model).keys() == model.state_dict().keys()


def test_deploy_merges_decoder():
    torch.manual_seed(2)
    model = _randomize(create_model("segformer_b0", num_classes=19))
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        train_graph = model(x)
        reparameterize_model(model)
        deploy_graph = model(x)
    assert model.decode_head.linear_fuse is None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert cosine(train_graph, deploy_graph) >= 0.99999
    assert (train_graph - deploy_graph).abs().max().item() <= 1e-4 * train_graph.abs().max().item()


def test_fused_attention_path_matches_explicit():
    torch.manual_seed(3)
    explicit = _randomize(create_model("mit_b0"))
    fused = create_model("mit_b0", fused_attn=True).eval()
    fused.load_state_dict(explicit.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (explicit(x) - fused(x)).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name,sizes", [
    ("segformer_b0", ("default", (160, 224))),
    ("mit_b0", ("default", (160, 224))),
    ("segformer_b0_cityscapes", ((128, 256),)),  # its default 512x1024 is segformer_b0's graph, only slower
])
def test_output_shapes(name, sizes):
    torch.manual_seed(4)
    cfg = get_cfg(name)
    for size in sizes:
        size = tuple(cfg.input_size[1:]) if size == "default" else size
        model = create_model(name, img_size=size).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, *size))
        if cfg.task == "segmentation":
            stride = cfg.output_stride
            assert out.shape == (1, cfg.num_classes, size[0] // stride, size[1] // stride)
        else:
            assert out.shape == (1, cfg.num_classes)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["segformer_b0", "segformer_b1", "segformer_b0_cityscapes"])
def test_full_cityscapes_frame_shapes(name):
    # 1024x2048 on the meta device: the whole graph's shapes without half a minute of CPU compute
    cfg = get_cfg(name)
    model = create_model(name, img_size=(1024, 2048)).eval().to("meta")
    with torch.no_grad():
        out = model(torch.empty(1, 3, 1024, 2048, device="meta"))
    assert out.shape == (1, cfg.num_classes, 1024 // 4, 2048 // 4)


def test_num_classes_kwarg():
    assert create_model("segformer_b1", num_classes=7)(torch.randn(1, 3, 64, 64)).shape == (1, 7, 16, 16)
    assert create_model("mit_b1", num_classes=10)(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(ValueError):
        create_model("mit_b0", pretrained=True)


@pytest.mark.parametrize("name,size,deploy", [
    ("segformer_b0", (128, 160), True),
    ("segformer_b0", (64, 64), False),
    ("mit_b0", (96, 96), False),
])
def test_onnx_matches_torch(name, size, deploy):
    torch.manual_seed(5)
    model = _randomize(create_model(name, img_size=size))
    if deploy:
        reparameterize_model(model)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        expected = model(x).numpy()
    proto = export_onnx(model, x, "input", "logits")
    ops = [n.op_type for n in proto.graph.node]
    # every nn.LayerNorm is one LayerNormalization node (no decomposed, fp16-fragile reductions)
    assert ops.count("LayerNormalization") == sum(isinstance(m, nn.LayerNorm) for m in model.modules())
    assert ops.count("Softmax") == sum(len(s.blocks) for s in (model.encoder if isinstance(model, SegFormer)
                                                                 else model).stages)
    (got,) = run_onnxruntime(proto, {"input": x.numpy()})
    assert_fp32_parity(got, expected)
