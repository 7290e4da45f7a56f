"""SeaFormer: squeeze-enhanced axial transformer for mobile semantic segmentation.

Paper: "SeaFormer: Squeeze-enhanced Axial Transformer for Mobile Semantic Segmentation" (Wan et al.,
ICLR 2023). Original code: github.com/fudan-zvg/SeaFormer (``seaformer-cls/seaformer.py`` for ImageNet,
``seaformer-seg/mmseg/models/{backbones/seaformer.py, decode_heads/light_head.py}`` for segmentation).
There is no installable reference; the zoo mirrors the original module names so its checkpoints load
with a small key filter (see ``checkpoint_filter_fn``).

Structure (SeaFormer-Small):
    smb1: stem 3x3/2 conv + three MobileNetV2 inverted residuals      -> 24 ch, stride 4
    smb2: two inverted residuals                                        -> 48 ch, stride 8 (seg: detail branch)
    smb3: two inverted residuals                                        -> 96 ch, stride 16
    smb4: one inverted residual, then trans1: 3 SeaFormer blocks        -> 160 ch, stride 32
    smb5: one inverted residual, then trans2: 3 SeaFormer blocks        -> 192 ch, stride 64
A SeaFormer block is x + SeaAttention(x), then x + Mlp(x), all convs with BatchNorm (no LayerNorm).
SeaAttention squeezes q/k/v by a mean over W (one token per row) and over H (one token per column),
runs softmax attention along each axis (length H or W), broadcasts the two results back to H x W,
and gates them with a 3x3 depthwise "detail enhancement" branch computed on the full-resolution q/k/v.

Classification pools stride 64 and applies one Linear. Segmentation (LightHead) multiplies the stride-8
detail features by upsampled hard-sigmoid gates computed from the stride-32 and stride-64 features,
then a depthwise 1x1 conv + BN + ReLU and a 1x1 classifier: logits at stride 8.

Resolution: the axial position embeddings are learned at length 16 and linearly interpolated to the
axis lengths of the stage (with ``dynamic_size=True``, by ``F.interpolate`` in the graph, for any size).
Otherwise the interpolation is a constant (16, N) matrix built for ``img_size`` at
construction, so the exported graph holds no shape-dependent resize; a model built for one size must
be run at that size (another size fails loudly in the position-embedding add).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn
import torch.nn.functional as F

from edgekit.models._layers import ConvNorm, DropPath, make_divisible
from edgekit.models._registry import ModelCfg, register_model

__all__ = ["SeaFormer", "SeaFormerSeg", "checkpoint_filter_fn"]

# Per MobileNetV2 group smb1..smb5: rows of (kernel, expand ratio, out channels, stride).
_SEAFORMER_ARCHS = {
    "small": dict(
        cfgs=(
            ((3, 1, 16, 1), (3, 4, 24, 2), (3, 3, 24, 1)),
            ((5, 3, 48, 2), (5, 3, 48, 1)),
            ((3, 3, 96, 2), (3, 3, 96, 1)),
            ((5, 4, 160, 2),),
            ((3, 6, 192, 2),),
        ),
        channels=(16, 24, 48, 96, 160, 192),
        emb_dims=(160, 192),
        key_dims=(16, 24),
        depths=(3, 3),
        num_heads=6,
        attn_ratio=2,
        mlp_ratios=(2, 4),
    ),
}
# LightHead per variant: detail features from smb2, gates from trans1 and trans2.
_LIGHT_HEADS = {
    "small": dict(head_in_chs=(48, 160, 192), head_embed_dims=(96, 128)),
}


# --------------------------------------------------------------------------------------------------
# helpers


def _linear_interp_matrix(src_len: int, dst_len: int) -> torch.Tensor:
    """(src_len, dst_len) matrix M with ``p @ M == F.interpolate(p, dst_len, mode="linear",
    align_corners=False)`` for any p (..., src_len): the interpolation of each unit vector."""
    eye = torch.eye(src_len, dtype=torch.float64)[None]
    return F.interpolate(eye, size=dst_len, mode="linear", align_corners=False)[0].float()


def _downsampled(size: int, num_stride2: int) -> int:
    """Spatial size after ``num_stride2`` stride-2 convs with padding k // 2 (odd k): ceil halving."""
    for _ in range(num_stride2):
        size = math.ceil(size / 2)
    return size


# --------------------------------------------------------------------------------------------------
# blocks


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand + BN + act] -> kxk depthwise + BN + act -> 1x1 project + BN.

    Residual when stride 1 and in == out (decided at construction). (B, C_in, H, W) -> (B, C_out, H/s, W/s).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int, expand_ratio: float,
                 act_layer=nn.ReLU):
        super().__init__()
        hidden = int(round(in_chs * expand_ratio))
        self.use_res_connect = stride == 1 and in_chs == out_chs
        layers = []
        if expand_ratio != 1:
            layers += [ConvNorm(in_chs, hidden, 1), act_layer()]
        layers += [ConvNorm(hidden, hidden, kernel_size, stride, groups=hidden), act_layer(),
                   ConvNorm(hidden, out_chs, 1)]
        self.conv = nn.Sequential(*layers)  # indices as in the original (conv.0 / conv.2 / conv.4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class SqueezeAxialPosEmbed(nn.Module):
    """Adds a learned (1, C, 16) embedding, linearly resized to the axis length, to squeezed tokens.

    The resize is a constant (16, length) matrix built here for the stage's axis length;
    ``reparameterize()`` bakes ``pos_embed @ interp`` into one constant. x: (B, C, length) -> same.
    """

    def __init__(self, dim: int, length: int | None, learned_len: int = 16):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, dim, learned_len))
        # length None: a model built for a range of sizes resizes to the axis it is given, in the graph
        # (F.interpolate to x's length, as the original SeaFormer does at run time)
        interp = None if length is None else _linear_interp_matrix(learned_len, length)
        self.register_buffer("interp", interp, persistent=False)
        self.length = length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.length is None:
            return x + F.interpolate(self.pos_embed, size=x.shape[-1], mode="linear", align_corners=False)
        if self.pos_embed is None:  # deploy: precomputed
            return x + self.pos
        return x + self.pos_embed @ self.interp

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.pos_embed is None or self.length is None:
            return
        self.register_buffer("pos", self.pos_embed @ self.interp)
        self.pos_embed = None
        self.interp = None


class SeaAttention(nn.Module):
    """Squeeze-enhanced axial attention. (B, dim, H, W) -> (B, dim, H, W).

    q, k: heads x key_dim channels, v: heads x (attn_ratio * key_dim) channels (1x1 conv + BN each).
    Row branch: mean over W -> tokens (B, heads, H, d) -> softmax attention over the H rows;
    column branch likewise over W. Both go through act + 1x1 conv + BN, broadcast-add to (H, W),
    add v, act + 1x1 conv + BN to dim, hard-sigmoid, and gate the detail branch
    pwconv(act(dwconv3x3(cat(q, k, v)))).

    ``reparameterize()`` (after the ConvNorms folded their BN) merges to_q / to_k / to_v into one
    conv (``to_qkv``), the concat the detail branch needs anyway.
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int, feat_size: tuple[int, int], attn_ratio: float = 2,
                 act_layer=nn.ReLU6, fused_attn: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = key_dim ** -0.5
        self.nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        # explicit matmul-softmax-matmul by default: what the ONNX rewrites match and every exporter handles
        self.fused_attn = fused_attn
        height, width = feat_size if feat_size is not None else (None, None)  # None: any size (dynamic_size)
        self.feat_size = feat_size

        self.to_q = ConvNorm(dim, self.nh_kd, 1)
        self.to_k = ConvNorm(dim, self.nh_kd, 1)
        self.to_v = ConvNorm(dim, self.dh, 1)
        self.to_qkv = None  # deploy: the three above merged
        self.proj = nn.Sequential(act_layer(), ConvNorm(self.dh, dim, 1, bn_weight_init=0.0))
        self.proj_encode_row = nn.Sequential(act_layer(), ConvNorm(self.dh, self.dh, 1, bn_weight_init=0.0))
        self.pos_emb_rowq = SqueezeAxialPosEmbed(self.nh_kd, height)
        self.pos_emb_rowk = SqueezeAxialPosEmbed(self.nh_kd, height)
        self.proj_encode_column = nn.Sequential(act_layer(), ConvNorm(self.dh, self.dh, 1, bn_weight_init=0.0))
        self.pos_emb_columnq = SqueezeAxialPosEmbed(self.nh_kd, width)
        self.pos_emb_columnk = SqueezeAxialPosEmbed(self.nh_kd, width)
        qkv_chs = 2 * self.nh_kd + self.dh
        self.dwconv = ConvNorm(qkv_chs, qkv_chs, 3, groups=qkv_chs)
        self.act = act_layer()
        self.pwconv = ConvNorm(qkv_chs, dim, 1)
        self.sigmoid = nn.Hardsigmoid()  # relu6(x + 3) / 6, one HardSigmoid node in ONNX

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax attention core.

        q, k: (B, heads, N, key_dim); v: (B, heads, N, d) with N = H (row) or W (column);
        bias broadcastable to (B, heads, N, N) (SeaFormer passes none). Returns (B, heads, N, d).
        """
        if self.fused_attn:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if bias is not None:
            attn = attn + bias
        return attn.softmax(dim=-1) @ v

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """Squeezed (B, heads * c, N) -> (B, heads, N, c)."""
        return x.reshape(x.shape[0], self.num_heads, -1, x.shape[-1]).transpose(-2, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.to_qkv is None:
            q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
            qkv = torch.cat([q, k, v], dim=1)
        else:
            qkv = self.to_qkv(x)
            q, k, v = qkv.split([self.nh_kd, self.nh_kd, self.dh], dim=1)
        detail = self.pwconv(self.act(self.dwconv(qkv)))

        # rows: squeeze W -> H tokens
        q_row = self._heads(self.pos_emb_rowq(q.mean(-1)))
        k_row = self._heads(self.pos_emb_rowk(k.mean(-1)))
        v_row = self._heads(v.mean(-1))
        x_row = self._attention(q_row, k_row, v_row)  # (B, heads, H, d)
        x_row = x_row.transpose(-2, -1).reshape(x.shape[0], self.dh, -1, 1)
        x_row = self.proj_encode_row(x_row)
        # columns: squeeze H -> W tokens
        q_col = self._heads(self.pos_emb_columnq(q.mean(-2)))
        k_col = self._heads(self.pos_emb_columnk(k.mean(-2)))
        v_col = self._heads(v.mean(-2))
        x_col = self._attention(q_col, k_col, v_col)  # (B, heads, W, d)
        x_col = x_col.transpose(-2, -1).reshape(x.shape[0], self.dh, 1, -1)
        x_col = self.proj_encode_column(x_col)

        out = self.proj(v + (x_row + x_col))  # (B, dh, H, 1) + (B, dh, 1, W) broadcasts to H x W
        return self.sigmoid(out) * detail

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.to_qkv is not None:
            return
        convs = []
        for cn in (self.to_q, self.to_k, self.to_v):
            cn.reparameterize()  # no-op when the tree walker already folded it
            convs.append(cn.c)
        fused = nn.Conv2d(convs[0].in_channels, sum(c.out_channels for c in convs), 1).to(convs[0].weight)
        fused.weight.copy_(torch.cat([c.weight for c in convs], dim=0))
        fused.bias.copy_(torch.cat([c.bias for c in convs], dim=0))
        self.to_qkv = fused
        self.to_q = self.to_k = self.to_v = None


class Mlp(nn.Module):
    """1x1 conv + BN -> 3x3 depthwise conv -> act -> 1x1 conv + BN. (B, C, H, W) -> same."""

    def __init__(self, dim: int, hidden_dim: int, act_layer=nn.ReLU6):
        super().__init__()
        self.fc1 = ConvNorm(dim, hidden_dim, 1)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act = act_layer()
        self.fc2 = ConvNorm(hidden_dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class SeaFormerBlock(nn.Module):
    """x + SeaAttention(x), then x + Mlp(x) (BatchNorm inside, no pre-norm). (B, C, H, W) -> same."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, feat_size: tuple[int, int], mlp_ratio: float = 4.0,
                 attn_ratio: float = 2, drop_path: float = 0.0, act_layer=nn.ReLU6, fused_attn: bool = False):
        super().__init__()
        self.attn = SeaAttention(dim, key_dim, num_heads, feat_size, attn_ratio, act_layer, fused_attn)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(x))
        return x + self.drop_path(self.mlp(x))


class FusionBlock(nn.Module):
    """LightHead fusion: BN(1x1(x_local)) * upsample(hardsigmoid(BN(1x1(x_global)))).

    x_local: (B, C_l, H, W), x_global: (B, C_g, h, w) with h < H -> (B, embed_dim, H, W).
    """

    def __init__(self, local_chs: int, global_chs: int, embed_dim: int):
        super().__init__()
        self.local_embedding = ConvNorm(local_chs, embed_dim, 1)
        self.global_act = ConvNorm(global_chs, embed_dim, 1)
        self.act = nn.Hardsigmoid()

    def forward(self, x_local: torch.Tensor, x_global: torch.Tensor) -> torch.Tensor:
        gate = F.interpolate(self.act(self.global_act(x_global)), size=x_local.shape[-2:], mode="bilinear",
                             align_corners=False)
        return self.local_embedding(x_local) * gate


# --------------------------------------------------------------------------------------------------
# stages


class StackedMV2Block(nn.Sequential):
    """Optional stem (3x3/2 conv + BN + ReLU) then inverted residuals named layer1, layer2, ..."""

    def __init__(self, cfgs, in_chs: int, stem: bool, act_layer=nn.ReLU):
        layers = OrderedDict()
        if stem:
            layers["stem_block"] = nn.Sequential(ConvNorm(3, in_chs, 3, 2), act_layer())
        for i, (k, t, c, s) in enumerate(cfgs):
            out_chs = make_divisible(c, 8)
            layers[f"layer{i + 1}"] = InvertedResidual(in_chs, out_chs, k, s, t, act_layer)
            in_chs = out_chs
        super().__init__(layers)


class BasicLayer(nn.Module):
    """A stack of SeaFormer blocks at one resolution. (B, C, H, W) -> same."""

    def __init__(self, depth: int, dim: int, key_dim: int, num_heads: int, feat_size: tuple[int, int],
                 mlp_ratio: float, attn_ratio: float, drop_path: tuple[float, ...], act_layer=nn.ReLU6,
                 fused_attn: bool = False):
        super().__init__()
        self.transformer_blocks = nn.ModuleList([
            SeaFormerBlock(dim, key_dim, num_heads, feat_size, mlp_ratio, attn_ratio, drop_path[i], act_layer,
                           fused_attn)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.transformer_blocks:
            x = block(x)
        return x


# --------------------------------------------------------------------------------------------------
# models


class SeaFormer(nn.Module):
    """SeaFormer backbone, with a pooled Linear head for ImageNet (``num_classes > 0``).

    forward_intermediates: (B, 3, H, W) -> [smb2 out (B, 48, H/8, W/8), trans1 out (B, 160, H/32, W/32),
    trans2 out (B, 192, H/64, W/64)] for Small (sizes ceil-halved per stride-2 conv).
    forward: (B, 3, H, W) -> (B, num_classes). H, W must equal ``img_size``.
    """

    def __init__(self, cfgs, channels, emb_dims, key_dims, depths=(3, 3), num_heads: int = 6, attn_ratio: float = 2,
                 mlp_ratios=(2, 4), img_size: tuple[int, int] = (224, 224), num_classes: int = 1000,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, fused_attn: bool = False,
                 dynamic_size: bool = False):
        super().__init__()
        self.img_size = tuple(img_size)
        self.dynamic_size = dynamic_size  # position embeddings resized in the graph: one model for any size
        self.num_classes = num_classes
        self.num_features = channels[-1]
        num_trans, num_smb = len(depths), len(cfgs)
        self._plan = []  # (smb name, trans name or None): trans stages follow the last smb groups
        num_stride2 = 1  # the stem
        for i, cfg in enumerate(cfgs):
            self.add_module(f"smb{i + 1}", StackedMV2Block(cfg, channels[i], stem=i == 0))
            num_stride2 += sum(row[3] == 2 for row in cfg)
            t = i + num_trans - num_smb
            if t >= 0:
                feat_size = None if dynamic_size else (_downsampled(self.img_size[0], num_stride2),
                                                       _downsampled(self.img_size[1], num_stride2))
                # stochastic-depth decay restarts in each transformer stage, as the original does
                dpr = tuple(torch.linspace(0, drop_path_rate, depths[t]).tolist())
                self.add_module(f"trans{t + 1}", BasicLayer(
                    depths[t], emb_dims[t], key_dims[t], num_heads, feat_size, mlp_ratios[t], attn_ratio, dpr,
                    fused_attn=fused_attn))
            self._plan.append((f"smb{i + 1}", f"trans{t + 1}" if t >= 0 else None))
        self.head_drop = nn.Dropout(drop_rate)
        self.linear = nn.Linear(channels[-1], num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, (smb, trans) in enumerate(self._plan):
            x = getattr(self, smb)(x)
            if i == 1:  # stride-8 detail features for the segmentation head
                feats.append(x)
            if trans is not None:
                x = getattr(self, trans)(x)
                feats.append(x)
        return feats

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for smb, trans in self._plan:
            x = getattr(self, smb)(x)
            if trans is not None:
                x = getattr(self, trans)(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x.mean(dim=(2, 3)))
        return x if pre_logits else self.linear(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class LightHead(nn.Module):
    """SeaFormer's segmentation head. feats: [(B, C0, H, W), (B, C1, h1, w1), (B, C2, h2, w2)]
    -> logits (B, num_classes, H, W) at the stride of feats[0] (8)."""

    def __init__(self, in_chs: tuple[int, ...], embed_dims: tuple[int, ...], num_classes: int = 150,
                 drop_rate: float = 0.1):
        super().__init__()
        for i, embed_dim in enumerate(embed_dims):
            local_chs = in_chs[0] if i == 0 else embed_dims[i - 1]
            self.add_module(f"fuse{i + 1}", FusionBlock(local_chs, in_chs[i + 1], embed_dim))
        self.num_fuse = len(embed_dims)
        channels = embed_dims[-1]
        self.linear_fuse = ConvNorm(channels, channels, 1, groups=channels)  # depthwise 1x1, i.e. per-channel affine
        self.act = nn.ReLU()
        self.dropout = nn.Dropout2d(drop_rate)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[0]
        for i in range(self.num_fuse):
            x = getattr(self, f"fuse{i + 1}")(x, feats[i + 1])
        return self.conv_seg(self.dropout(self.act(self.linear_fuse(x))))


class SeaFormerSeg(nn.Module):
    """SeaFormer backbone + LightHead. (B, 3, H, W) -> logits (B, num_classes, H/8, W/8)."""

    def __init__(self, img_size: tuple[int, int] = (512, 512), num_classes: int = 150, head_in_chs=(48, 160, 192),
                 head_embed_dims=(96, 128), decoder_drop_rate: float = 0.1, **backbone_kwargs):
        super().__init__()
        self.img_size = tuple(img_size)
        self.num_classes = num_classes
        self.backbone = SeaFormer(img_size=img_size, num_classes=0, **backbone_kwargs)
        self.decode_head = LightHead(head_in_chs, head_embed_dims, num_classes, decoder_drop_rate)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone.forward_intermediates(x)

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_features(x)

    def forward_head(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.decode_head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# --------------------------------------------------------------------------------------------------
# checkpoint conversion


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Convert a checkpoint of the original repository (fudan-zvg/SeaFormer) to the zoo's keys.

    Original layout, ImageNet (``seaformer-cls``, timm training script; the file holds
    ``state_dict`` and ``state_dict_ema``, the original loader prefers the EMA weights)::

        smb1.stem_block.0.c.weight            (16, 3, 3, 3)     Conv2d_BN = c (conv, no bias) + bn
        smb1.stem_block.0.bn.{weight, bias, running_mean, running_var, num_batches_tracked}
        smb{i}.layer{j}.conv.{0,2,4}.c.weight  expand 1x1 / depthwise kxk / project 1x1 (+ .bn.*)
        smb1.layer1.conv.{0,2}.c.weight        expand ratio 1: depthwise / project only
        trans{t}.transformer_blocks.{j}.attn.to_q.c.weight  (heads * key_dim, dim, 1, 1)  (+ .bn.*)
            ...attn.to_k.c / attn.to_v.c (v: heads * 2 * key_dim), attn.dwconv.c (3x3 depthwise),
            ...attn.pwconv.c, attn.proj.1.c, attn.proj_encode_row.1.c, attn.proj_encode_column.1.c
            ...attn.pos_emb_{rowq, rowk, columnq, columnk}.pos_embed  (1, heads * key_dim, 16)
            ...mlp.fc1.c, mlp.dwconv.{weight, bias} (plain conv), mlp.fc2.c
        linear.{weight, bias}                  (1000, 192)

    Original layout, segmentation (``seaformer-seg``, mmsegmentation ``EncoderDecoder``; the file
    holds ``state_dict`` and ``meta``): the backbone keys above under ``backbone.`` (no ``linear``), and
    ``decode_head.fuse{1,2}.{local_embedding, global_act}.{conv.weight, bn.*}`` (mmcv ConvModule),
    ``decode_head.linear_fuse.{conv.weight, bn.*}`` (depthwise 1x1), ``decode_head.conv_seg.{weight, bias}``.

    The zoo mirrors these names; the filter only unwraps the container, drops a DataParallel
    ``module.`` prefix, renames mmcv's ``.conv.`` to the zoo ConvNorm's ``.c.`` in the head, and drops
    keys the target has no place for (the ImageNet ``linear`` when loading into a segmentation
    backbone). A zoo state dict passes through unchanged. Load before reparameterizing.
    """
    for container in ("state_dict_ema", "state_dict", "model"):
        if isinstance(state_dict.get(container), dict):
            state_dict = state_dict[container]
            break
    segmentation = isinstance(model, SeaFormerSeg)
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if segmentation:
            if key.startswith(("smb", "trans")):  # an ImageNet checkpoint loaded as the seg backbone
                key = "backbone." + key
            elif key.startswith("linear."):
                continue
            if key.startswith("decode_head."):
                key = key.replace(".conv.", ".c.")
        elif key.startswith("backbone."):  # a segmentation checkpoint's backbone into the classifier
            key = key.removeprefix("backbone.")
        elif key.startswith(("decode_head.", "auxiliary_head.")):
            continue
        out[key] = value
    return out


# --------------------------------------------------------------------------------------------------
# factories


def _create_seaformer(variant: str, arch: str, pretrained: bool = False, segmentation: bool = False, **kwargs):
    if pretrained:
        raise ValueError(f"{variant}: no pretrained weights in the zoo; load a converted checkpoint instead")
    if segmentation:
        kwargs.setdefault("img_size", (512, 512))
        return SeaFormerSeg(**_SEAFORMER_ARCHS[arch], **_LIGHT_HEADS[arch], **kwargs)
    kwargs.setdefault("img_size", (224, 224))
    return SeaFormer(**_SEAFORMER_ARCHS[arch], **kwargs)


@register_model(ModelCfg(family="seaformer", size_divisor=32,
                         reference={"original": "fudan-zvg/SeaFormer seaformer-cls SeaFormer_S"},
                         description="SeaFormer-Small, squeeze-enhanced axial attention, ImageNet head"))
def seaformer_small(pretrained: bool = False, **kwargs) -> SeaFormer:
    return _create_seaformer("seaformer_small", "small", pretrained, **kwargs)


@register_model(ModelCfg(family="seaformer", task="segmentation", input_size=(3, 512, 512), num_classes=150,
                         labels="ade20k", output_stride=8, size_divisor=32,
                         reference={"original": "fudan-zvg/SeaFormer seaformer_small_512x512_160k_4x8_ade20k"},
                         description="SeaFormer-Small + LightHead, ADE20K 150 classes, logits at stride 8"))
def seaformer_small_seg(pretrained: bool = False, **kwargs) -> SeaFormerSeg:
    return _create_seaformer("seaformer_small_seg", "small", pretrained, segmentation=True, **kwargs)
