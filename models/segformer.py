"""SegFormer: the Mix Transformer (MiT) encoder and the All-MLP decoder.

Paper: "SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers"
(Xie et al., NeurIPS 2021). Reference implementation and key layout: Hugging Face transformers
(``SegformerForSemanticSegmentation`` / ``SegformerForImageClassification``).

Structure (per stage i, i = 0..3):
    overlapping patch embedding (strided conv, k=7/s=4 for stage 0, k=3/s=2 after) + LayerNorm
    -> depth_i x [LN -> efficient self-attention (K/V spatially reduced by a strided conv + LN)
                  LN -> Mix-FFN (fc1 -> 3x3 depthwise conv -> GELU -> fc2)]
    -> LayerNorm -> NCHW feature map at stride 4, 8, 16, 32.
Classification (mit_*) pools the last map; segmentation (segformer_*) projects all four maps to a
common width, upsamples them to stride 4, fuses them with a 1x1 conv + BN + ReLU and classifies.

Deploy notes: nothing here depends on the resolution (no position embeddings, no bias tables); the
decoder's ``reparameterize()`` folds the fuse conv's BatchNorm and then the fuse conv itself into
the four per-stage projections (bilinear upsampling commutes with per-pixel linear maps), so the
exported head is four small 1x1 convs, three upsamples and a sum instead of a 4*D-channel concat
and a 4*D -> D conv at stride 4.
"""
from __future__ import annotations

import re
from functools import partial

import torch
from torch import nn
import torch.nn.functional as F

from edgekit.models._layers import ConvNorm, DropPath
from edgekit.models._registry import ModelCfg, register_model

__all__ = ["MixVisionTransformer", "SegFormer", "checkpoint_filter_fn"]

# MiT variants: widths, depths and heads per stage; sr ratios / patch sizes / strides are shared.
_MIT_ARCHS = {
    "b0": dict(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2)),
    "b1": dict(embed_dims=(64, 128, 320, 512), depths=(2, 2, 2, 2)),
}


# --------------------------------------------------------------------------------------------------
# helpers


def _tokens_to_map(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], height, width)


def _map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


# --------------------------------------------------------------------------------------------------
# blocks


class OverlapPatchEmbed(nn.Module):
    """Strided conv whose kernel overlaps neighbouring patches (padding k // 2), then LayerNorm.

    (B, C_in, H, W) -> tokens (B, H' * W', C_out) with H' = ceil(H / stride), plus (H', W').
    """

    def __init__(self, in_chs: int, embed_dim: int, patch_size: int, stride: int, norm_layer=nn.LayerNorm):
        super().__init__()
        self.proj = nn.Conv2d(in_chs, embed_dim, patch_size, stride, padding=patch_size // 2)
        self.norm = norm_layer(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        height, width = x.shape[-2:]
        return self.norm(_map_to_tokens(x)), height, width


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys/values come from a spatially reduced sequence.

    Queries keep all N = H * W tokens; K/V are computed from the map after a sr x sr conv with
    stride sr and a LayerNorm, so the score matrix is N x N / sr^2 instead of N x N.
    K and V share one Linear (``kv``), one MatMul in the exported graph instead of two.

    x: (B, N, C) -> (B, N, C).
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, qkv_bias: bool = True,
                 fused_attn: bool = False, norm_layer=nn.LayerNorm):
        super().__init__()
        assert dim % num_heads == 0, f"dim {dim} not divisible by num_heads {num_heads}"
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        # The explicit matmul-softmax-matmul core is what the ONNX rewrites match and what every
        # exporter handles; SDPA is faster in eager PyTorch but exports as an opset-dependent blob.
        self.fused_attn = fused_attn
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.sr_norm = norm_layer(dim)
        else:
            self.sr = None
            self.sr_norm = None

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax attention core.

        q: (B, heads, Nq, d); k, v: (B, heads, Nkv, d); bias: additive, broadcastable to
        (B, heads, Nq, Nkv) (SegFormer passes none). Returns (B, heads, Nq, d).
        """
        if self.fused_attn:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if bias is not None:
            attn = attn + bias
        return attn.softmax(dim=-1) @ v

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, num_tokens, dim = x.shape
        q = self.q(x).reshape(batch, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        if self.sr is not None:
            x = self.sr_norm(_map_to_tokens(self.sr(_tokens_to_map(x, height, width))))
        # (B, M, 2 * heads, d) -> (B, 2 * heads, M, d): rank 4 throughout, then split K | V heads
        kv = self.kv(x).reshape(batch, -1, 2 * self.num_heads, self.head_dim).transpose(1, 2)
        k, v = kv.chunk(2, dim=1)
        x = self._attention(q, k, v)
        x = x.transpose(1, 2).reshape(batch, num_tokens, dim)
        return self.proj(x)


class MixFFN(nn.Module):
    """fc1 -> 3x3 depthwise conv (positional information without a position table) -> GELU -> fc2.

    x: (B, N, C) -> (B, N, C).
    """

    def __init__(self, dim: int, hidden_dim: int, act_layer=nn.GELU):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = self.fc1(x)
        x = _map_to_tokens(self.dwconv(_tokens_to_map(x, height, width)))
        return self.fc2(self.act(x))


class MiTBlock(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MixFFN(LN(x)). (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 fused_attn: bool = False, act_layer=nn.GELU, norm_layer=nn.LayerNorm):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = EfficientSelfAttention(dim, num_heads, sr_ratio, fused_attn=fused_attn, norm_layer=norm_layer)
        self.norm2 = norm_layer(dim)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio), act_layer=act_layer)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), height, width))
        return x + self.drop_path(self.mlp(self.norm2(x), height, width))


# --------------------------------------------------------------------------------------------------
# stages


class MiTStage(nn.Module):
    """Patch embedding -> blocks -> LayerNorm. (B, C_in, H, W) -> (B, C, H / stride, W / stride)."""

    def __init__(self, in_chs: int, dim: int, depth: int, num_heads: int, sr_ratio: int, patch_size: int,
                 stride: int, mlp_ratio: float = 4.0, drop_path: tuple[float, ...] | float = 0.0,
                 fused_attn: bool = False, act_layer=nn.GELU, norm_layer=nn.LayerNorm):
        super().__init__()
        drop_path = drop_path if isinstance(drop_path, (tuple, list)) else (drop_path,) * depth
        self.patch_embed = OverlapPatchEmbed(in_chs, dim, patch_size, stride, norm_layer=norm_layer)
        self.blocks = nn.ModuleList([
            MiTBlock(dim, num_heads, sr_ratio, mlp_ratio, drop_path[j], fused_attn, act_layer, norm_layer)
            for j in range(depth)
        ])
        self.norm = norm_layer(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, height, width = self.patch_embed(x)
        for block in self.blocks:
            x = block(x, height, width)
        return _tokens_to_map(self.norm(x), height, width)


# --------------------------------------------------------------------------------------------------
# models


class MixVisionTransformer(nn.Module):
    """MiT encoder with a global-average-pool + Linear classification head.

    forward_intermediates: (B, 3, H, W) -> four maps (B, embed_dims[i], H / 4 / 2^i, W / 4 / 2^i).
    forward: (B, 3, H, W) -> (B, num_classes) (the pooled features (B, embed_dims[-1]) if num_classes=0).
    """

    def __init__(self, img_size: tuple[int, int] = (224, 224), in_chans: int = 3, num_classes: int = 1000,
                 embed_dims: tuple[int, ...] = (32, 64, 160, 256), depths: tuple[int, ...] = (2, 2, 2, 2),
                 num_heads: tuple[int, ...] = (1, 2, 5, 8), sr_ratios: tuple[int, ...] = (8, 4, 2, 1),
                 patch_sizes: tuple[int, ...] = (7, 3, 3, 3), strides: tuple[int, ...] = (4, 2, 2, 2),
                 mlp_ratios: tuple[float, ...] = (4, 4, 4, 4), drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 fused_attn: bool = False, norm_eps: float = 1e-5):
        super().__init__()
        # Hugging Face builds every LayerNorm with torch's default eps (1e-5), the original MiT uses
        # 1e-6 in the blocks; the default follows the reference whose weights we load.
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        self.img_size = tuple(img_size)
        self.num_classes = num_classes
        self.embed_dims = tuple(embed_dims)
        self.num_features = embed_dims[-1]
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        stages, in_chs, start = [], in_chans, 0
        for i, depth in enumerate(depths):
            stages.append(MiTStage(in_chs, embed_dims[i], depth, num_heads[i], sr_ratios[i], patch_sizes[i],
                                   strides[i], mlp_ratios[i], tuple(dpr[start:start + depth]), fused_attn,
                                   nn.GELU, norm_layer))
            in_chs, start = embed_dims[i], start + depth
        self.stages = nn.ModuleList(stages)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        # mean over all tokens of the (already LayerNormed) last stage, as Hugging Face does
        x = self.head_drop(x.mean(dim=(2, 3)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class AllMLPDecoder(nn.Module):
    """SegFormer's decode head.

    Train graph (mirrors the reference): per-stage 1x1 projection to D channels -> bilinear upsample
    to stride 4 -> concat (deepest first) -> 1x1 conv 4D -> D + BN -> ReLU -> dropout -> 1x1 classifier.
    ``reparameterize()`` folds the BN into the fuse conv and the fuse conv's four D x D slices into
    the projections; the deploy graph sums the upsampled D-channel maps instead.

    feats: four maps (B, C_i, H_i, W_i), feats[0] at stride 4 -> (B, num_classes, H_0, W_0).
    """

    def __init__(self, in_chs: tuple[int, ...], embed_dim: int = 256, num_classes: int = 150, drop_rate: float = 0.1):
        super().__init__()
        # 1x1 convs instead of the reference's token Linears: same weights, no flatten/transpose
        self.linear_c = nn.ModuleList([nn.Conv2d(c, embed_dim, 1) for c in in_chs])
        self.linear_fuse = ConvNorm(embed_dim * len(in_chs), embed_dim, 1)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Conv2d(embed_dim, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        # stage 0 is already at stride 4; the others are upsampled to its size
        outs = [self.linear_c[0](feats[0])] + [
            F.interpolate(proj(f), size=size, mode="bilinear", align_corners=False)
            for proj, f in zip(self.linear_c[1:], feats[1:])
        ]
        if self.linear_fuse is None:  # deploy: the fuse conv lives inside linear_c
            x = outs[0]
            for out in outs[1:]:
                x = x + out
        else:
            x = self.linear_fuse(torch.cat(outs[::-1], dim=1))
        return self.classifier(self.dropout(self.act(x)))

    @torch.no_grad()
    def reparameterize(self) -> None:
        """fuse(cat(up(P_3 f_3), ..., up(P_0 f_0))) == sum_i up(W_i P_i f_i) + b: bilinear weights sum
        to one, so the per-pixel linear maps (and the bias) commute with the upsampling."""
        if self.linear_fuse is None:
            return
        self.linear_fuse.reparameterize()  # BN -> conv
        fuse = self.linear_fuse.c
        dim = fuse.out_channels
        w_fuse = fuse.weight.flatten(1)  # (D, n * D), deepest stage first
        n = len(self.linear_c)
        merged = []
        for i, proj in enumerate(self.linear_c):
            w_i = w_fuse[:, (n - 1 - i) * dim:(n - i) * dim]
            conv = nn.Conv2d(proj.in_channels, dim, 1).to(proj.weight)
            conv.weight.copy_((w_i @ proj.weight.flatten(1)).reshape(dim, proj.in_channels, 1, 1))
            conv.bias.copy_(w_i @ proj.bias + (fuse.bias if i == 0 else 0.0))
            merged.append(conv)
        self.linear_c = nn.ModuleList(merged)
        self.linear_fuse = None


class SegFormer(nn.Module):
    """MiT encoder + All-MLP decoder. (B, 3, H, W) -> logits (B, num_classes, H / 4, W / 4)."""

    def __init__(self, img_size: tuple[int, int] = (512, 512), num_classes: int = 150, decoder_dim: int = 256,
                 decoder_drop_rate: float = 0.1, **encoder_kwargs):
        super().__init__()
        self.img_size = tuple(img_size)
        self.num_classes = num_classes
        self.encoder = MixVisionTransformer(img_size=img_size, num_classes=0, **encoder_kwargs)
        self.decode_head = AllMLPDecoder(self.encoder.embed_dims, decoder_dim, num_classes, decoder_drop_rate)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder.forward_intermediates(x)

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_features(x)

    def forward_head(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.decode_head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# --------------------------------------------------------------------------------------------------
# checkpoint conversion

# Hugging Face transformers v5 module names (SegformerModel.stages...) -> zoo names, applied in order.
_HF_V5_RULES = (
    (r"^stages\.(\d+)\.patch_embeddings\.proj\.", r"stages.\1.patch_embed.proj."),
    (r"^stages\.(\d+)\.patch_embeddings\.layer_norm\.", r"stages.\1.patch_embed.norm."),
    (r"^stages\.(\d+)\.layer_norm\.", r"stages.\1.norm."),
    (r"\.layernorm_before\.", ".norm1."),
    (r"\.layernorm_after\.", ".norm2."),
    (r"\.attention\.q_proj\.", ".attn.q."),
    (r"\.attention\.o_proj\.", ".attn.proj."),
    (r"\.attention\.sequence_reduction\.sequence_reduction\.", ".attn.sr."),
    (r"\.attention\.sequence_reduction\.layer_norm\.", ".attn.sr_norm."),
    (r"\.mlp\.dwconv\.dwconv\.", ".mlp.dwconv."),
    (r"^decode_head\.linear_projections\.(\d+)\.proj\.", r"decode_head.linear_c.\1."),
    (r"^decode_head\.linear_fuse\.", "decode_head.linear_fuse.c."),
    (r"^decode_head\.batch_norm\.", "decode_head.linear_fuse.bn."),
)
# Hub checkpoints (transformers v4 names: segformer.encoder.block.0.0.attention.self.query ...) ->
# v5 names; the v5 rules above then finish the job.
_HF_V4_RULES = (
    (r"^encoder\.patch_embeddings\.(\d+)\.", r"stages.\1.patch_embeddings."),
    (r"^encoder\.block\.(\d+)\.", r"stages.\1.blocks."),
    (r"^encoder\.layer_norm\.(\d+)\.", r"stages.\1.layer_norm."),
    (r"\.attention\.self\.query\.", ".attention.q_proj."),
    (r"\.attention\.self\.key\.", ".attention.k_proj."),
    (r"\.attention\.self\.value\.", ".attention.v_proj."),
    (r"\.attention\.self\.sr\.", ".attention.sequence_reduction.sequence_reduction."),
    (r"\.attention\.self\.layer_norm\.", ".attention.sequence_reduction.layer_norm."),
    (r"\.attention\.output\.dense\.", ".attention.o_proj."),
    (r"\.mlp\.dense1\.", ".mlp.fc1."),
    (r"\.mlp\.dense2\.", ".mlp.fc2."),
    (r"\.layer_norm_1\.", ".layernorm_before."),
    (r"\.layer_norm_2\.", ".layernorm_after."),
    (r"^decode_head\.linear_c\.", "decode_head.linear_projections."),
)


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Convert a Hugging Face SegFormer state dict to the zoo's keys.

    Accepted layouts (``SegformerForSemanticSegmentation`` / ``SegformerForImageClassification``):
    - transformers v5 ``model.state_dict()``: ``segformer.stages.0.blocks.0.attention.q_proj.weight``,
      ``...attention.sequence_reduction.sequence_reduction.weight``, ``...mlp.dwconv.dwconv.weight``,
      ``decode_head.linear_projections.0.proj.weight``, ``decode_head.linear_fuse.weight``,
      ``decode_head.batch_norm.*``, ``decode_head.classifier.*``, ``classifier.*``;
    - Hub files / transformers v4: ``segformer.encoder.block.0.0.attention.self.query.weight``,
      ``segformer.encoder.patch_embeddings.0.proj.weight``, ``segformer.encoder.layer_norm.0.weight``,
      ``...attention.output.dense``, ``...mlp.dense1``, ``decode_head.linear_c.0.proj.weight``.
    Changes besides names: key and value Linears are concatenated into ``attn.kv`` (K rows first);
    the decoder's token Linears become 1x1 convs (weight (D, C) -> (D, C, 1, 1)). A zoo state dict
    passes through unchanged. Segmentation keys go under ``encoder.``, the classifier becomes ``head``.
    A ``{"state_dict": ...}`` / ``{"model": ...}`` container and a DataParallel ``module.`` prefix are
    unwrapped. Not accepted: the original NVlabs / mmsegmentation layout (``backbone.block1.0.attn.q``).
    """
    for container in ("state_dict", "model"):
        if isinstance(state_dict.get(container), dict):
            state_dict = state_dict[container]
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if any(".attn.kv." in k for k in state_dict):
        return state_dict  # already the zoo layout
    segmentation = isinstance(model, SegFormer)
    prefix = "encoder." if segmentation else ""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("segformer.")
        if key.startswith("classifier."):  # SegformerForImageClassification's Linear
            if not segmentation:
                out["head." + key.removeprefix("classifier.")] = value
            continue
        for pattern, repl in _HF_V4_RULES + _HF_V5_RULES:
            key = re.sub(pattern, repl, key)
        if key.startswith("decode_head."):
            if not segmentation:
                continue
            if key.startswith("decode_head.linear_c.") and value.ndim == 2:
                value = value[:, :, None, None]
            elif key == "decode_head.linear_fuse.c.weight" and value.ndim == 2:
                value = value[:, :, None, None]
            out[key] = value
        else:
            out[prefix + key] = value
    # fuse K and V: (C, C) + (C, C) -> (2C, C), keys first as the zoo's kv split expects
    for key in [k for k in out if ".attention.k_proj." in k]:
        v_key = key.replace(".attention.k_proj.", ".attention.v_proj.")
        out[key.replace(".attention.k_proj.", ".attn.kv.")] = torch.cat([out.pop(key), out.pop(v_key)], dim=0)
    return out


# --------------------------------------------------------------------------------------------------
# factories


def _create_mit(variant: str, arch: str, pretrained: bool = False, **kwargs) -> MixVisionTransformer:
    if pretrained:
        raise ValueError(f"{variant}: no pretrained weights in the zoo; load a converted checkpoint instead")
    kwargs.setdefault("img_size", (224, 224))
    return MixVisionTransformer(**_MIT_ARCHS[arch], **kwargs)


def _create_segformer(variant: str, arch: str, pretrained: bool = False, **kwargs) -> SegFormer:
    if pretrained:
        raise ValueError(f"{variant}: no pretrained weights in the zoo; load a converted checkpoint instead")
    kwargs.setdefault("img_size", (512, 512))
    return SegFormer(**_MIT_ARCHS[arch], **kwargs)


def _cfg(**kwargs) -> ModelCfg:
    return ModelCfg(family="segformer", size_divisor=32, **kwargs)


def _seg_cfg(**kwargs) -> ModelCfg:
    return _cfg(task="segmentation", input_size=(3, 512, 512), num_classes=150, labels="ade20k", output_stride=4,
                **kwargs)


@register_model(_cfg(reference={"transformers": "SegformerForImageClassification (nvidia/mit-b0)"},
                     description="MiT-B0 encoder with a pooled linear ImageNet head"))
def mit_b0(pretrained: bool = False, **kwargs) -> MixVisionTransformer:
    return _create_mit("mit_b0", "b0", pretrained, **kwargs)


@register_model(_cfg(reference={"transformers": "SegformerForImageClassification (nvidia/mit-b1)"},
                     description="MiT-B1 encoder with a pooled linear ImageNet head"))
def mit_b1(pretrained: bool = False, **kwargs) -> MixVisionTransformer:
    return _create_mit("mit_b1", "b1", pretrained, **kwargs)


@register_model(_seg_cfg(reference={"transformers": "SegformerForSemanticSegmentation "
                                                    "(nvidia/segformer-b0-finetuned-ade-512-512)"},
                         description="SegFormer-B0, ADE20K 150 classes, logits at stride 4"))
def segformer_b0(pretrained: bool = False, **kwargs) -> SegFormer:
    kwargs.setdefault("num_classes", 150)
    return _create_segformer("segformer_b0", "b0", pretrained, **kwargs)


@register_model(_seg_cfg(reference={"transformers": "SegformerForSemanticSegmentation "
                                                    "(nvidia/segformer-b1-finetuned-ade-512-512)"},
                         description="SegFormer-B1, ADE20K 150 classes, logits at stride 4"))
def segformer_b1(pretrained: bool = False, **kwargs) -> SegFormer:
    kwargs.setdefault("num_classes", 150)
    return _create_segformer("segformer_b1", "b1", pretrained, **kwargs)


@register_model(_cfg(task="segmentation", input_size=(3, 512, 1024), num_classes=19, labels="cityscapes",
                     output_stride=4,
                     reference={"transformers": "SegformerForSemanticSegmentation "
                                                "(nvidia/segformer-b0-finetuned-cityscapes-512-1024)"},
                     description="SegFormer-B0, Cityscapes 19 classes, 512x1024 input, logits at stride 4"))
def segformer_b0_cityscapes(pretrained: bool = False, **kwargs) -> SegFormer:
    kwargs.setdefault("num_classes", 19)
    kwargs.setdefault("img_size", (512, 1024))
    return _create_segformer("segformer_b0_cityscapes", "b0", pretrained, **kwargs)
