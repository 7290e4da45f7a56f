"""SeaFormer-Small: original-layout conversion against an independent functional reference, deploy
(BN folding, q/k/v merge, baked position embeddings) equivalence, shapes, ONNX parity.

There is no installable reference (the original needs mmcv / mmseg), so the reference here is a
functional re-statement of the original repository's forward (fudan-zvg/SeaFormer, seaformer-cls /
seaformer-seg) that reads a state dict in the original key layout, built synthetically below.
"""
from __future__ import annotations


import pytest
import torch
from torch import nn
import torch.nn.functional as F

from edgekit.models import create_model, get_cfg, reparameterize_model
from edgekit.models.seaformer import checkpoint_filter_fn
from tests.helpers import assert_fp32_parity, cosine, export_onnx, run_onnxruntime

# SeaFormer-Small as configured in the original repository (seaformer_small.py / SeaFormer_S)
SMB_CFGS = [
    [(3, 1, 16, 1), (3, 4, 24, 2), (3, 3, 24, 1)],
    [(5, 3, 48, 2), (5, 3, 48, 1)],
    [(3, 3, 96, 2), (3, 3, 96, 1)],
    [(5, 4, 160, 2)],
    [(3, 6, 192, 2)],
]
CHANNELS = [16, 24, 48, 96, 160, 192]
EMB_DIMS, KEY_DIMS, DEPTHS, MLP_RATIOS, HEADS, ATTN_RATIO = [160, 192], [16, 24], [3, 3], [2, 4], 6, 2
HEAD_IN, HEAD_EMBED, HEAD_CHANNELS = [48, 160, 192], [96, 128], 128


# ---------------------------------------------------------------------------------------------------
# synthetic checkpoint in the original layout


class _Gen:
    def __init__(self, seed: int):
        self.g = torch.Generator().manual_seed(seed)
        self.sd: dict[str, torch.Tensor] = {}

    def randn(self, *shape, std=1.0):
        return torch.randn(*shape, generator=self.g) * std

    def bn(self, name: str, chs: int) -> None:
        self.sd[f"{name}.weight"] = 0.5 + torch.rand(chs, generator=self.g)
        self.sd[f"{name}.bias"] = self.randn(chs, std=0.1)
        self.sd[f"{name}.running_mean"] = self.randn(chs, std=0.2)
        self.sd[f"{name}.running_var"] = 0.5 + torch.rand(chs, generator=self.g)
        self.sd[f"{name}.num_batches_tracked"] = torch.tensor(1000)

    def conv_bn(self, name: str, cin: int, cout: int, k: int = 1, groups: int = 1, conv: str = "c") -> None:
        fan_in = cin // groups * k * k
        self.sd[f"{name}.{conv}.weight"] = self.randn(cout, cin // groups, k, k, std=fan_in ** -0.5)
        self.bn(f"{name}.bn", cout)


def original_state_dict(segmentation: bool, num_classes: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = _Gen(seed)
    pre = "backbone." if segmentation else ""
    gen.conv_bn(f"{pre}smb1.stem_block.0", 3, CHANNELS[0], 3)
    for i, cfg in enumerate(SMB_CFGS):
        cin = CHANNELS[i]
        for j, (k, t, c, _) in enumerate(cfg):
            name, hidden = f"{pre}smb{i + 1}.layer{j + 1}.conv", int(round(cin * t))
            idx = 0
            if t != 1:
                gen.conv_bn(f"{name}.0", cin, hidden)
                idx = 2
            gen.conv_bn(f"{name}.{idx}", hidden, hidden, k, groups=hidden)
            gen.conv_bn(f"{name}.{idx + 2}", hidden, c)
            cin = c
    for t, (dim, kd, depth, ratio) in enumerate(zip(EMB_DIMS, KEY_DIMS, DEPTHS, MLP_RATIOS)):
        nh_kd, dh = kd * HEADS, int(ATTN_RATIO * kd) * HEADS
        for j in range(depth):
            name = f"{pre}trans{t + 1}.transformer_blocks.{j}"
            gen.conv_bn(f"{name}.attn.to_q", dim, nh_kd)
            gen.conv_bn(f"{name}.attn.to_k", dim, nh_kd)
            gen.conv_bn(f"{name}.attn.to_v", dim, dh)
            gen.conv_bn(f"{name}.attn.proj.1", dh, dim)
            gen.conv_bn(f"{name}.attn.proj_encode_row.1", dh, dh)
            gen.conv_bn(f"{name}.attn.proj_encode_column.1", dh, dh)
            for axis in ("rowq", "rowk", "columnq", "columnk"):
                gen.sd[f"{name}.attn.pos_emb_{axis}.pos_embed"] = gen.randn(1, nh_kd, 16)
            gen.conv_bn(f"{name}.attn.dwconv", 2 * nh_kd + dh, 2 * nh_kd + dh, 3, groups=2 * nh_kd + dh)
            gen.conv_bn(f"{name}.attn.pwconv", 2 * nh_kd + dh, dim)
            hidden = int(dim * ratio)
            gen.conv_bn(f"{name}.mlp.fc1", dim, hidden)
            gen.sd[f"{name}.mlp.dwconv.weight"] = gen.randn(hidden, 1, 3, 3, std=1 / 3)
            gen.sd[f"{name}.mlp.dwconv.bias"] = gen.randn(hidden, std=0.1)
            gen.conv_bn(f"{name}.mlp.fc2", hidden, dim)
    if segmentation:
        for i, embed in enumerate(HEAD_EMBED):
            local = HEAD_IN[0] if i == 0 else HEAD_EMBED[i - 1]
            gen.conv_bn(f"decode_head.fuse{i + 1}.local_embedding", local, embed, conv="conv")
            gen.conv_bn(f"decode_head.fuse{i + 1}.global_act", HEAD_IN[i + 1], embed, conv="conv")
        gen.conv_bn("decode_head.linear_fuse", HEAD_CHANNELS, HEAD_CHANNELS, groups=HEAD_CHANNELS, conv="conv")
        gen.sd["decode_head.conv_seg.weight"] = gen.randn(num_classes, HEAD_CHANNELS, 1, 1, std=HEAD_CHANNELS ** -0.5)
        gen.sd["decode_head.conv_seg.bias"] = gen.randn(num_classes, std=0.1)
    else:
        gen.sd["linear.weight"] = gen.randn(num_classes, CHANNELS[-1], std=CHANNELS[-1] ** -0.5)
        gen.sd["linear.bias"] = gen.randn(num_classes, std=0.1)
    return gen.sd


# ---------------------------------------------------------------------------------------------------
# functional reference: the original forward, reading original keys


def _cbn(sd, name, x, stride=1, conv="c"):
    w = sd[f"{name}.{conv}.weight"]
    y = F.conv2d(x, w, None, stride, w.shape[-1] // 2, 1, x.shape[1] // w.shape[1])
    return F.batch_norm(y, sd[f"{name}.bn.running_mean"], sd[f"{name}.bn.running_var"], sd[f"{name}.bn.weight"],
                        sd[f"{name}.bn.bias"], False, 0.0, 1e-5)


def _h_sigmoid(x):
    return F.relu6(x + 3) / 6


def _sea_attention(sd, name, x, kd):
    b, _, h, w = x.shape
    dh = int(ATTN_RATIO * kd) * HEADS
    q, k, v = _cbn(sd, f"{name}.to_q", x), _cbn(sd, f"{name}.to_k", x), _cbn(sd, f"{name}.to_v", x)
    qkv = _cbn(sd, f"{name}.pwconv", F.relu6(_cbn(sd, f"{name}.dwconv", torch.cat([q, k, v], 1))))

    def pos(axis, t):
        return t + F.interpolate(sd[f"{name}.pos_emb_{axis}.pos_embed"], size=t.shape[-1], mode="linear",
                                 align_corners=False)

    qrow = pos("rowq", q.mean(-1)).reshape(b, HEADS, -1, h).permute(0, 1, 3, 2)
    krow = pos("rowk", k.mean(-1)).reshape(b, HEADS, -1, h)
    vrow = v.mean(-1).reshape(b, HEADS, -1, h).permute(0, 1, 3, 2)
    xx_row = torch.matmul((torch.matmul(qrow, krow) * kd ** -0.5).softmax(-1), vrow)
    xx_row = _cbn(sd, f"{name}.proj_encode_row.1", F.relu6(xx_row.permute(0, 1, 3, 2).reshape(b, dh, h, 1)))
    qcol = pos("columnq", q.mean(-2)).reshape(b, HEADS, -1, w).permute(0, 1, 3, 2)
    kcol = pos("columnk", k.mean(-2)).reshape(b, HEADS, -1, w)
    vcol = v.mean(-2).reshape(b, HEADS, -1, w).permute(0, 1, 3, 2)
    xx_col = torch.matmul((torch.matmul(qcol, kcol) * kd ** -0.5).softmax(-1), vcol)
    xx_col = _cbn(sd, f"{name}.proj_encode_column.1", F.relu6(xx_col.permute(0, 1, 3, 2).reshape(b, dh, 1, w)))
    xx = _cbn(sd, f"{name}.proj.1", F.relu6(v + (xx_row + xx_col)))
    return _h_sigmoid(xx) * qkv


def reference_forward(sd, x, segmentation: bool):
    pre = "backbone." if segmentation else ""
    x = F.relu(_cbn(sd, f"{pre}smb1.stem_block.0", x, stride=2))
    outputs = []
    for i, cfg in enumerate(SMB_CFGS):
        cin = CHANNELS[i]
        for j, (_, t, c, s) in enumerate(cfg):
            name = f"{pre}smb{i + 1}.layer{j + 1}.conv"
            y, idx = x, 0
            if t != 1:
                y, idx = F.relu(_cbn(sd, f"{name}.0", y)), 2
            y = _cbn(sd, f"{name}.{idx + 2}", F.relu(_cbn(sd, f"{name}.{idx}", y, stride=s)))
            x = x + y if s == 1 and cin == c else y
            cin = c
        if i == 1:
            outputs.append(x)
        t = i - 3
        if t >= 0:
            for j in range(DEPTHS[t]):
                name = f"{pre}trans{t + 1}.transformer_blocks.{j}"
                x = x + _sea_attention(sd, f"{name}.attn", x, KEY_DIMS[t])
                hidden = _cbn(sd, f"{name}.mlp.fc1", x)
                hidden = F.conv2d(hidden, sd[f"{name}.mlp.dwconv.weight"], sd[f"{name}.mlp.dwconv.bias"], 1, 1, 1,
                                  hidden.shape[1])
                x = x + _cbn(sd, f"{name}.mlp.fc2", F.relu6(hidden))
            outputs.append(x)
    if not segmentation:
        return F.linear(x.mean((2, 3)), sd["linear.weight"], sd["linear.bias"])
    detail = outputs[0]
    for i in range(len(HEAD_EMBED)):
        name = f"decode_head.fuse{i + 1}"
        local = _cbn(sd, f"{name}.local_embedding", detail, conv="conv")
        gate = _h_sigmoid(_cbn(sd, f"{name}.global_act", outputs[i + 1], conv="conv"))
        detail = local * F.interpolate(gate, size=local.shape[-2:], mode="bilinear", align_corners=False)
    x = F.relu(_cbn(sd, "decode_head.linear_fuse", detail, conv="conv"))
    return F.conv2d(x, sd["decode_head.conv_seg.weight"], sd["decode_head.conv_seg.bias"])


# ---------------------------------------------------------------------------------------------------
# tests


@pytest.mark.parametrize("name,size,container", [
    ("seaformer_small", (224, 224), "state_dict_ema"),  # axial lengths 7 and 4: the embeddings are resized
    ("seaformer_small_seg", (256, 320), "state_dict"),
])
def test_original_checkpoint_matches_reference(name, size, container):
    cfg = get_cfg(name)
    segmentation = cfg.task == "segmentation"
    sd = original_state_dict(segmentation, cfg.num_classes, seed=1)
    model = create_model(name, img_size=size).eval()
    model.load_state_dict(checkpoint_filter_fn({container: sd, "meta": {}}, model), strict=True)
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = reference_forward(sd, x, segmentation)
        out = model(x)
    assert out.shape == expected.shape
    assert expected.abs().max() > 0.5  # the tolerance below is not vacuous
    assert (out - expected).abs().max().item() <= 1e-5 * max(1.0, expected.abs().max().item())


def test_converter_crosses_classification_and_segmentation():
    cls_sd = original_state_dict(False, 1000, seed=2)
    seg = create_model("seaformer_small_seg", img_size=(128, 128))
    missing, unexpected = seg.load_state_dict(checkpoint_filter_fn(cls_sd, seg), strict=False)
    assert not unexpected and all(k.startswith("decode_head.") for k in missing)  # ImageNet init of the backbone
    seg_sd = {f"module.{k}": v for k, v in original_state_dict(True, 150, seed=3).items()}
    cls = create_model("seaformer_small", num_classes=1000)
    missing, unexpected = cls.load_state_dict(checkpoint_filter_fn(seg_sd, cls), strict=False)
    assert not unexpected and missing == ["linear.weight", "linear.bias"]
    assert checkpoint_filter_fn(cls.state_dict(), cls).keys() == cls.state_dict().keys()


@pytest.mark.parametrize("name,size", [("seaformer_small_seg", (192, 256)), ("seaformer_small", (224, 224))])
def test_deploy_equivalence(name, size):
    cfg = get_cfg(name)
    model = create_model(name, img_size=size).eval()
    model.load_state_dict(checkpoint_filter_fn(original_state_dict(cfg.task == "segmentation", cfg.num_classes, 4),
                                               model))
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        train_graph = model(x)
        reparameterize_model(model)
        deploy_graph = model(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(m.to_qkv is not None for m in model.modules() if type(m).__name__ == "SeaAttention")
    assert not any(n.endswith("pos_embed") for n, _ in model.named_parameters())  # baked into constants
    assert cosine(train_graph, deploy_graph) >= 0.99999


@pytest.mark.parametrize("name,sizes", [
    ("seaformer_small_seg", ("default", (256, 384))),
    ("seaformer_small", ("default", (256, 192))),
])
def test_output_shapes(name, sizes):
    torch.manual_seed(6)
    cfg = get_cfg(name)
    for size in sizes:
        size = tuple(cfg.input_size[1:]) if size == "default" else size
        model = create_model(name, img_size=size).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, *size))
        if cfg.task == "segmentation":
            assert out.shape == (1, cfg.num_classes, size[0] // cfg.output_stride, size[1] // cfg.output_stride)
        else:
            assert out.shape == (1, cfg.num_classes)
        assert torch.isfinite(out).all()


def test_full_cityscapes_frame_shapes():
    # 1024x2048 on the meta device: the graph's shapes (and position-embedding lengths) without the compute
    model = create_model("seaformer_small_seg", img_size=(1024, 2048)).eval().to("meta")
    with torch.no_grad():
        out = model(torch.empty(1, 3, 1024, 2048, device="meta"))
    assert out.shape == (1, 150, 1024 // 8, 2048 // 8)


def test_built_for_its_resolution():
    model = create_model("seaformer_small", img_size=(224, 224), num_classes=10).eval()
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 10)
    with pytest.raises(RuntimeError):  # position embeddings are constants for 224: no silent resize
        model(torch.randn(1, 3, 256, 256))
    with pytest.raises(ValueError):
        create_model("seaformer_small", pretrained=True)


def test_fused_attention_path_matches_explicit():
    explicit = create_model("seaformer_small", img_size=(128, 128)).eval()
    explicit.load_state_dict(checkpoint_filter_fn(original_state_dict(False, 1000, 7), explicit))
    fused = create_model("seaformer_small", img_size=(128, 128), fused_attn=True).eval()
    fused.load_state_dict(explicit.state_dict())
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert (explicit(x) - fused(x)).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name,size,deploy", [
    ("seaformer_small_seg", (256, 256), True),
    ("seaformer_small", (224, 224), False),  # train graph: embeddings as pos_embed @ interp, folded by the exporter
])
def test_onnx_matches_torch(name, size, deploy):
    cfg = get_cfg(name)
    model = create_model(name, img_size=size).eval()
    model.load_state_dict(checkpoint_filter_fn(original_state_dict(cfg.task == "segmentation", cfg.num_classes, 8),
                                               model))
    if deploy:
        reparameterize_model(model)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = model(x).numpy()
    proto = export_onnx(model, x, "input", "logits")
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Softmax") == 2 * sum(DEPTHS)  # one row and one column attention per block
    # the only resizes are the head's two gate upsamplings: position embeddings are constants
    assert ops.count("Resize") == (2 if cfg.task == "segmentation" else 0)
    assert "BatchNormalization" not in ops
    (got,) = run_onnxruntime(proto, {"input": x.numpy()})
    assert_fp32_parity(got, expected)
