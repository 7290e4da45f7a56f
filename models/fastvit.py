"""FastViT: a hybrid vision transformer built on structural re-parameterization
(Vasu et al., Apple, 2023, https://arxiv.org/abs/2303.14189).

Train-time graph (what checkpoints hold) and deploy graph (what is exported) differ:

* stem and patch embeddings are MobileOne blocks (kxk conv-BN + 1x1 conv-BN + BN identity branches)
  and RepLKNet-style large-kernel convs (7x7 + 3x3 conv-BN branches): each folds into one conv;
* the RepMixer token mixer ``x + gamma * (mixer(x) - norm(x))`` folds into one depthwise conv;
* RepCPE, the conditional positional encoding ``x + dwconv7x7(x)``, folds into one depthwise conv;
* the ConvMlp's conv-BN folds into one conv, and the attention block's pre-norm BN folds into ``qkv``.

``edgekit.models.reparameterize_model`` calls every block's ``reparameterize()`` once, top-down. Nothing
depends on the input resolution: attention (SA variants, last stage only) is global over the
H/32 x W/32 tokens without a position bias; positions come from RepCPE's convolution.

Module names mirror timm's ``timm/models/fastvit.py`` so timm state dicts load unchanged;
``checkpoint_filter_fn`` also converts Apple's original (ml-fastvit) layout.
"""
from __future__ import annotations

import bisect
import re

import torch
from torch import nn
import torch.nn.functional as F

from edgekit.models._layers import fuse_conv_bn, make_divisible, stage_outputs
from edgekit.models._registry import ModelCfg, register_model

__all__ = ["FastVit", "checkpoint_filter_fn"]


# ---------------------------------------------------------------------------------------------
# helpers


class ConvBn(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d, keys ``conv`` / ``bn`` as timm's ``ConvNormAct(apply_act=False)``.

    ``reparameterize()`` folds the BN into the conv (bias added, ``bn`` becomes Identity).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups,
                                          bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_chs))

    def reparameterize(self) -> None:
        if not isinstance(self.bn, nn.Identity):
            self.conv, self.bn = fuse_conv_bn(self.conv, self.bn), nn.Identity()

    def kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the equivalent single conv (folds the BN first if it is not yet)."""
        self.reparameterize()
        return self.conv.weight, self.conv.bias


def _identity_kernel(chs: int, groups: int, kernel_size: int, like: torch.Tensor) -> torch.Tensor:
    """A (chs, chs // groups, k, k) kernel that copies its input: 1 at the centre tap of each channel."""
    kernel = torch.zeros(chs, chs // groups, kernel_size, kernel_size, dtype=like.dtype, device=like.device)
    idx = torch.arange(chs, device=like.device)
    kernel[idx, idx % (chs // groups), kernel_size // 2, kernel_size // 2] = 1.0
    return kernel


def _bn_as_conv(bn: nn.BatchNorm2d, groups: int, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A BN-only (identity) branch written as a conv: (weight, bias)."""
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    kernel = _identity_kernel(bn.num_features, groups, kernel_size, bn.weight) * scale.reshape(-1, 1, 1, 1)
    return kernel, bn.bias - bn.running_mean * scale


def _new_conv(in_chs: int, out_chs: int, kernel_size: int, stride: int, groups: int,
              weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=True)
    conv = conv.to(weight)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


class SqueezeExcite(nn.Module):
    """Squeeze-excite gate (B, C, H, W) -> (B, C, H, W); key names as timm's ``SEModule``."""

    def __init__(self, chs: int, rd_ratio: float = 1 / 16, rd_divisor: int = 1):
        super().__init__()
        rd_chs = make_divisible(chs * rd_ratio, rd_divisor)
        self.fc1 = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(rd_chs, chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(s))))


class LayerScale2d(nn.Module):
    """Per-channel scale, gamma (C, 1, 1) as in timm's FastViT.

    Deliberately not folded into the preceding conv at deploy time: trained gammas can be ~1e-4,
    and weight * gamma then lands in fp16's subnormal range; runtimes fuse this Mul themselves.
    """

    def __init__(self, dim: int, init_value: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


# ---------------------------------------------------------------------------------------------
# blocks


class MobileOneBlock(nn.Module):
    """MobileOne block (https://arxiv.org/abs/2206.04040), (B, in, H, W) -> (B, out, H/s, W/s).

    Train graph: sum of ``num_conv_branches`` kxk conv-BN branches, an optional 1x1 conv-BN "scale"
    branch and, when shapes allow, a BN-only identity branch; then SE and activation. Deploy graph
    (after ``reparameterize()``): one kxk conv with bias (``reparam_conv``), then SE and activation.

    group_size: channels per conv group; 0 = dense conv, 1 = depthwise.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, group_size: int = 0,
                 use_se: bool = False, use_act: bool = True, use_scale_branch: bool = True,
                 num_conv_branches: int = 1, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.in_chs, self.out_chs, self.kernel_size, self.stride = in_chs, out_chs, kernel_size, stride
        self.groups = in_chs // group_size if group_size else 1
        self.se = SqueezeExcite(out_chs) if use_se else nn.Identity()
        self.reparam_conv: nn.Conv2d | None = None
        self.identity = nn.BatchNorm2d(in_chs) if in_chs == out_chs and stride == 1 else None
        self.conv_kxk = nn.ModuleList([
            ConvBn(in_chs, out_chs, kernel_size, stride, self.groups) for _ in range(num_conv_branches)
        ]) if num_conv_branches > 0 else None
        self.conv_scale = (ConvBn(in_chs, out_chs, 1, stride, self.groups)
                           if kernel_size > 1 and use_scale_branch else None)
        self.act = act_layer() if use_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:  # structural (set by reparameterize), not shape-dependent
            return self.act(self.se(self.reparam_conv(x)))
        out = 0
        if self.identity is not None:
            out = self.identity(x)
        if self.conv_scale is not None:
            out = out + self.conv_scale(x)
        if self.conv_kxk is not None:
            for branch in self.conv_kxk:
                out = out + branch(x)
        return self.act(self.se(out))

    @torch.no_grad()
    def kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the single conv equivalent to the sum of the branches."""
        if self.reparam_conv is not None:
            return self.reparam_conv.weight, self.reparam_conv.bias
        k = self.kernel_size
        parts = []
        if self.identity is not None:
            parts.append(_bn_as_conv(self.identity, self.groups, k))
        if self.conv_scale is not None:
            w, b = self.conv_scale.kernel_bias()
            parts.append((F.pad(w, [k // 2] * 4), b))  # 1x1 -> kxk: the tap sits at the centre
        parts += [branch.kernel_bias() for branch in self.conv_kxk or []]
        assert parts, "a MobileOne block needs at least one branch"
        weight = sum(w for w, _ in parts)
        bias = sum(b for _, b in parts)
        return weight, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.reparam_conv is not None:
            return
        weight, bias = self.kernel_bias()
        self.reparam_conv = _new_conv(self.in_chs, self.out_chs, self.kernel_size, self.stride, self.groups,
                                      weight, bias)
        self.identity = self.conv_kxk = self.conv_scale = None


class ReparamLargeKernelConv(nn.Module):
    """RepLKNet-style large-kernel conv (https://arxiv.org/abs/2203.06717), (B, in, H, W) -> (B, out, H/s, W/s).

    Train graph: large kxk conv-BN + small conv-BN in parallel. ``reparameterize()`` zero-pads the
    small kernel to kxk and adds it: one conv (``reparam_conv``).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int, group_size: int,
                 small_kernel: int | None = 3):
        super().__init__()
        self.in_chs, self.out_chs, self.kernel_size, self.stride = in_chs, out_chs, kernel_size, stride
        self.groups = in_chs // group_size if group_size else 1
        self.small_kernel = small_kernel
        self.reparam_conv: nn.Conv2d | None = None
        self.large_conv = ConvBn(in_chs, out_chs, kernel_size, stride, self.groups)
        if small_kernel is not None:
            assert small_kernel <= kernel_size, "the small kernel must fit inside the large one"
            self.small_conv = ConvBn(in_chs, out_chs, small_kernel, stride, self.groups)
        else:
            self.small_conv = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:
            return self.reparam_conv(x)
        out = self.large_conv(x)
        if self.small_conv is not None:
            out = out + self.small_conv(x)
        return out

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.reparam_conv is not None:
            return
        weight, bias = self.large_conv.kernel_bias()
        if self.small_conv is not None:
            w, b = self.small_conv.kernel_bias()
            weight, bias = weight + F.pad(w, [(self.kernel_size - self.small_kernel) // 2] * 4), bias + b
        self.reparam_conv = _new_conv(self.in_chs, self.out_chs, self.kernel_size, self.stride, self.groups,
                                      weight, bias)
        self.large_conv = self.small_conv = None


class PatchEmbed(nn.Module):
    """Stride-2 downsampling embedding: depthwise large-kernel conv, then 1x1 MobileOne block.

    (B, in, H, W) -> (B, embed_dim, H/2, W/2).
    """

    def __init__(self, patch_size: int, stride: int, in_chs: int, embed_dim: int,
                 act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.proj = nn.Sequential(
            ReparamLargeKernelConv(in_chs, embed_dim, patch_size, stride, group_size=1, small_kernel=3),
            MobileOneBlock(embed_dim, embed_dim, 1, 1, act_layer=act_layer),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class RepMixer(nn.Module):
    """Re-parameterizable token mixer, (B, C, H, W) -> same: ``x + gamma * (mixer(x) - norm(x))``.

    ``mixer`` is a depthwise MobileOne block (kxk + 1x1 + identity branches), ``norm`` a BN-only
    MobileOne block. Everything is linear and depthwise, so ``reparameterize()`` gives one depthwise
    kxk conv: W = I + gamma * (W_mixer - W_norm), b = gamma * (b_mixer - b_norm).
    """

    def __init__(self, dim: int, kernel_size: int = 3, layer_scale_init_value: float | None = 1e-5):
        super().__init__()
        self.dim, self.kernel_size = dim, kernel_size
        self.reparam_conv: nn.Conv2d | None = None
        self.norm = MobileOneBlock(dim, dim, kernel_size, group_size=1, use_act=False, use_scale_branch=False,
                                   num_conv_branches=0)
        self.mixer = MobileOneBlock(dim, dim, kernel_size, group_size=1, use_act=False)
        self.layer_scale = LayerScale2d(dim, layer_scale_init_value) if layer_scale_init_value is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:
            return self.reparam_conv(x)
        delta = self.mixer(x) - self.norm(x)
        return x + (self.layer_scale(delta) if self.layer_scale is not None else delta)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.reparam_conv is not None:
            return
        w_mix, b_mix = self.mixer.kernel_bias()
        w_norm, b_norm = self.norm.kernel_bias()
        gamma = self.layer_scale.gamma.reshape(-1) if self.layer_scale is not None else torch.ones_like(b_mix)
        weight = (_identity_kernel(self.dim, self.dim, self.kernel_size, w_mix)
                  + gamma.reshape(-1, 1, 1, 1) * (w_mix - w_norm))
        bias = gamma * (b_mix - b_norm)
        self.reparam_conv = _new_conv(self.dim, self.dim, self.kernel_size, 1, self.dim, weight, bias)
        self.mixer = self.norm = self.layer_scale = None


class RepConditionalPosEnc(nn.Module):
    """Conditional positional encoding (https://arxiv.org/abs/2102.10882), (B, C, H, W) -> same.

    ``x + dwconv(x)``; ``reparameterize()`` adds the identity to the kernel centre: one dw conv.
    """

    def __init__(self, dim: int, spatial_shape: int = 7):
        super().__init__()
        self.dim, self.spatial_shape = dim, spatial_shape
        self.reparam_conv: nn.Conv2d | None = None
        self.pos_enc = nn.Conv2d(dim, dim, spatial_shape, 1, spatial_shape // 2, groups=dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:
            return self.reparam_conv(x)
        return x + self.pos_enc(x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.reparam_conv is not None:
            return
        w = self.pos_enc.weight + _identity_kernel(self.dim, self.dim, self.spatial_shape, self.pos_enc.weight)
        self.reparam_conv = _new_conv(self.dim, self.dim, self.spatial_shape, 1, self.dim, w, self.pos_enc.bias)
        self.pos_enc = None


class ConvMlp(nn.Module):
    """Depthwise 7x7 conv-BN -> 1x1 expand -> act -> 1x1 project, (B, C, H, W) -> same."""

    def __init__(self, in_chs: int, hidden_chs: int, act_layer: type[nn.Module] = nn.GELU, drop: float = 0.0):
        super().__init__()
        self.conv = ConvBn(in_chs, in_chs, 7, groups=in_chs)
        self.fc1 = nn.Conv2d(in_chs, hidden_chs, 1)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden_chs, in_chs, 1)
        self.drop = nn.Dropout(drop)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.fc1(self.conv(x))))
        return self.drop(self.fc2(x))


class Attention(nn.Module):
    """Global multi-head self-attention over an NCHW map, (B, C, H, W) -> (B, C, H, W).

    Tokens are the H*W positions; no position bias (RepCPE before the stage provides positions).
    q, k, v are split from one ``qkv`` Linear as rank-4 tensors (no rank-5 qkv stack, CoreML-safe).
    """

    def __init__(self, dim: int, head_dim: int = 32, qkv_bias: bool = False, fused_attn: bool = False):
        super().__init__()
        assert dim % head_dim == 0, "dim must be a multiple of head_dim"
        self.head_dim = head_dim
        self.num_heads = dim // head_dim
        self.scale = head_dim ** -0.5
        # The explicit matmul-softmax-matmul path is the default: it is the pattern edgekit's rewrite
        # rules match and it exports identically on every opset; the fused kernel is for training.
        self.fused_attn = fused_attn
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
        """softmax(q k^T * scale + bias) v; q (B, h, Nq, d), k/v (B, h, Nkv, d) -> (B, h, Nq, d)."""
        if self.fused_attn:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if bias is not None:
            attn = attn + bias
        return attn.softmax(dim=-1) @ v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, N, C)
        # qkv features are laid out (3, heads, head_dim), as in timm
        q, k, v = (t.reshape(B, H * W, self.num_heads, self.head_dim).transpose(1, 2)
                   for t in self.qkv(x).chunk(3, dim=-1))
        x = self._attention(q, k, v).transpose(1, 2).reshape(B, H * W, C)
        return self.proj(x).transpose(1, 2).reshape(B, C, H, W)


class RepMixerBlock(nn.Module):
    """MetaFormer block with RepMixer token mixing, (B, C, H, W) -> same."""

    def __init__(self, dim: int, kernel_size: int = 3, mlp_ratio: float = 4.0, act_layer: type[nn.Module] = nn.GELU,
                 proj_drop: float = 0.0, layer_scale_init_value: float | None = 1e-5):
        super().__init__()
        self.token_mixer = RepMixer(dim, kernel_size, layer_scale_init_value)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), act_layer, proj_drop)
        self.layer_scale = LayerScale2d(dim, layer_scale_init_value) if layer_scale_init_value is not None \
            else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.token_mixer(x)
        return x + self.layer_scale(self.mlp(x))


class AttentionBlock(nn.Module):
    """MetaFormer block with BN -> self-attention token mixing, (B, C, H, W) -> same.

    ``reparameterize()`` folds the pre-attention BatchNorm into ``token_mixer.qkv`` (an affine
    per-channel map followed by a Linear is a Linear with bias); the residual takes the un-normed x,
    so nothing else changes.
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, act_layer: type[nn.Module] = nn.GELU,
                 proj_drop: float = 0.0, layer_scale_init_value: float | None = 1e-5, fused_attn: bool = False):
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.token_mixer = Attention(dim, fused_attn=fused_attn)
        self.layer_scale_1 = LayerScale2d(dim, layer_scale_init_value) if layer_scale_init_value is not None \
            else nn.Identity()
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), act_layer, proj_drop)
        self.layer_scale_2 = LayerScale2d(dim, layer_scale_init_value) if layer_scale_init_value is not None \
            else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale_1(self.token_mixer(self.norm(x)))
        return x + self.layer_scale_2(self.mlp(x))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if isinstance(self.norm, nn.Identity):
            return
        bn, qkv = self.norm, self.token_mixer.qkv
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        shift = bn.bias - bn.running_mean * scale
        fused = nn.Linear(qkv.in_features, qkv.out_features, bias=True).to(qkv.weight)
        fused.weight.copy_(qkv.weight * scale[None, :])
        fused.bias.copy_(qkv.weight @ shift + (qkv.bias if qkv.bias is not None else 0.0))
        self.token_mixer.qkv, self.norm = fused, nn.Identity()


# ---------------------------------------------------------------------------------------------
# stages


class FastVitStage(nn.Module):
    """(PatchEmbed) -> (RepCPE) -> ``depth`` blocks of one token-mixer type."""

    def __init__(self, dim: int, dim_out: int, depth: int, token_mixer_type: str, downsample: bool = True,
                 down_patch_size: int = 7, down_stride: int = 2, pos_emb_kernel: int | None = None,
                 kernel_size: int = 3, mlp_ratio: float = 4.0, act_layer: type[nn.Module] = nn.GELU,
                 proj_drop_rate: float = 0.0, layer_scale_init_value: float | None = 1e-5,
                 fused_attn: bool = False):
        super().__init__()
        if downsample:
            self.downsample = PatchEmbed(down_patch_size, down_stride, dim, dim_out, act_layer)
        else:
            assert dim == dim_out, "a stage without downsample keeps its width"
            self.downsample = nn.Identity()
        self.pos_emb = RepConditionalPosEnc(dim_out, pos_emb_kernel) if pos_emb_kernel else nn.Identity()
        if token_mixer_type == "repmixer":
            blocks = [RepMixerBlock(dim_out, kernel_size, mlp_ratio, act_layer, proj_drop_rate, layer_scale_init_value)
                      for _ in range(depth)]
        elif token_mixer_type == "attention":
            blocks = [AttentionBlock(dim_out, mlp_ratio, act_layer, proj_drop_rate, layer_scale_init_value,
                                     fused_attn) for _ in range(depth)]
        else:
            raise ValueError(f"unknown token mixer {token_mixer_type!r} (expected 'repmixer' or 'attention')")
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.pos_emb(self.downsample(x)))


# ---------------------------------------------------------------------------------------------
# model


class ClassifierHead(nn.Module):
    """Global average pool -> dropout -> Linear ``fc``, (B, C, h, w) -> (B, num_classes)."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x.mean((2, 3)))
        return x if pre_logits else self.fc(x)


class FastVit(nn.Module):
    """FastViT classifier, (B, 3, H, W) -> (B, num_classes); H, W multiples of 32.

    img_size is recorded for the factory surface; no layer depends on it.
    """

    def __init__(self, layers: tuple[int, ...] = (2, 2, 6, 2),
                 token_mixers: tuple[str, ...] = ("repmixer",) * 4, embed_dims: tuple[int, ...] = (64, 128, 256, 512),
                 mlp_ratios: tuple[float, ...] = (4,) * 4, downsamples: tuple[bool, ...] = (False, True, True, True),
                 pos_embs: tuple[int | None, ...] = (None,) * 4, repmixer_kernel_size: int = 3,
                 num_classes: int = 1000, in_chans: int = 3, img_size: tuple[int, int] = (256, 256),
                 down_patch_size: int = 7, down_stride: int = 2, drop_rate: float = 0.0, proj_drop_rate: float = 0.0,
                 layer_scale_init_value: float | None = 1e-5, cls_ratio: float = 2.0,
                 act_layer: type[nn.Module] = nn.GELU, fused_attn: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.img_size = tuple(img_size)
        self.stem = nn.Sequential(
            MobileOneBlock(in_chans, embed_dims[0], 3, stride=2, act_layer=act_layer),
            MobileOneBlock(embed_dims[0], embed_dims[0], 3, stride=2, group_size=1, act_layer=act_layer),
            MobileOneBlock(embed_dims[0], embed_dims[0], 1, stride=1, act_layer=act_layer),
        )
        stages, prev_dim = [], embed_dims[0]
        for i, depth in enumerate(layers):
            stages.append(FastVitStage(
                prev_dim, embed_dims[i], depth, token_mixers[i],
                downsample=downsamples[i] or prev_dim != embed_dims[i], down_patch_size=down_patch_size,
                down_stride=down_stride, pos_emb_kernel=pos_embs[i], kernel_size=repmixer_kernel_size,
                mlp_ratio=mlp_ratios[i], act_layer=act_layer, proj_drop_rate=proj_drop_rate,
                layer_scale_init_value=layer_scale_init_value, fused_attn=fused_attn,
            ))
            prev_dim = embed_dims[i]
        self.stages = nn.Sequential(*stages)
        self.num_features = int(embed_dims[-1] * cls_ratio)
        self.final_conv = MobileOneBlock(embed_dims[-1], self.num_features, 3, stride=1, group_size=1, use_se=True,
                                         act_layer=act_layer)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, num_features, H/32, W/32)."""
        return self.final_conv(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, C, h, w) -> (B, num_classes), or pooled (B, C) with pre_logits."""
        return self.head(x, pre_logits=pre_logits)

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> every stage's output, NCHW, in order of stride (the maps ``--features`` picks from)."""
        return stage_outputs(x, self.stem, self.stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# ---------------------------------------------------------------------------------------------
# checkpoints and factories

# Apple ml-fastvit module names -> timm / zoo names (plain substring renames, applied in order).
_APPLE_RENAMES = (
    ("patch_embed", "stem"), ("rbr_conv", "conv_kxk"), ("rbr_scale", "conv_scale"), ("rbr_skip", "identity"),
    ("conv_exp", "final_conv"), ("lkb_origin", "large_conv"), ("convffn", "mlp"),
    ("se.reduce", "se.fc1"), ("se.expand", "se.fc2"),
)


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """FastViT state dict (timm or Apple ml-fastvit layout) -> zoo keys.

    timm layout (``stem.0.conv_kxk.0.conv.weight``, ``stages.3.pos_emb.pos_enc.weight``,
    ``stages.3.blocks.0.layer_scale_1.gamma``, ``final_conv.se.fc1.weight``, ``head.fc.weight``): the
    zoo mirrors it, returned as is.

    Apple layout (github.com/apple/ml-fastvit, ``{"state_dict": ...}``): one flat ``network``
    Sequential interleaving block lists, ``PatchEmbed`` entries (keys ``network.{i}.proj.*``) and
    RepCPE entries (``network.{i}.pe.*``); MobileOne branches named ``rbr_conv`` / ``rbr_scale`` /
    ``rbr_skip``, ``lkb_origin`` for the large kernel, ``convffn`` for the MLP, ``conv_exp`` for the
    final conv with ``se.reduce`` / ``se.expand``, bare ``layer_scale`` / ``layer_scale_{1,2}``
    parameters and ``head.weight``. Every ``network`` index holding a ``proj`` opens a new stage.

    Train-graph checkpoints only: load, then reparameterize.
    """
    for container in ("model", "state_dict"):
        if container in state_dict and isinstance(state_dict[container], dict):
            state_dict = state_dict[container]
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if not any(k.startswith("network.") for k in state_dict):
        return state_dict  # timm layout

    stage_starts = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r"network\.(\d+)\.proj\.", k))})
    out = {}
    for k, v in state_dict.items():
        for old, new in _APPLE_RENAMES:
            k = k.replace(old, new)
        k = re.sub(r"layer_scale(_[12])?$", r"layer_scale\1.gamma", k)
        if k.startswith("head."):
            k = "head.fc." + k[len("head."):]
        m = re.match(r"network\.(\d+)\.(.*)", k)
        if m:
            net_idx, rest = int(m.group(1)), m.group(2)
            stage = f"stages.{bisect.bisect_right(stage_starts, net_idx)}"
            if rest.startswith("proj."):
                k = f"{stage}.downsample.{rest}"
            elif rest.startswith("pe."):
                k = f"{stage}.pos_emb.pos_enc.{rest[len('pe.'):]}"
            else:
                k = f"{stage}.blocks.{rest}"
        out[k] = v
    return out


def _create_fastvit(img_size: tuple[int, int] = (256, 256), **kwargs) -> FastVit:
    return FastVit(img_size=tuple(img_size), **kwargs)


_CFG = dict(family="fastvit", input_size=(3, 256, 256), interpolation="bicubic", size_divisor=32)


@register_model(ModelCfg(**_CFG, reference={"timm": "fastvit_t8"},
                         description="FastViT-T8: RepMixer-only hybrid, fully re-parameterizable"))
def fastvit_t8(**kwargs) -> FastVit:
    model_args = dict(layers=(2, 2, 4, 2), embed_dims=(48, 96, 192, 384), mlp_ratios=(3, 3, 3, 3))
    return _create_fastvit(**dict(model_args, **kwargs))


@register_model(ModelCfg(**_CFG, reference={"timm": "fastvit_sa12"},
                         description="FastViT-SA12: RepMixer stages + RepCPE and self-attention in the last stage"))
def fastvit_sa12(**kwargs) -> FastVit:
    model_args = dict(layers=(2, 2, 6, 2), embed_dims=(64, 128, 256, 512), mlp_ratios=(4, 4, 4, 4),
                      pos_embs=(None, None, None, 7), token_mixers=("repmixer", "repmixer", "repmixer", "attention"))
    return _create_fastvit(**dict(model_args, **kwargs))
