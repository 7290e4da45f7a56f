"""Next-ViT-S: convolution blocks (NCB) and transformer blocks (NTB), BatchNorm only, built for export.

Paper: `Next-ViT: Next Generation Vision Transformer for Efficient Deployment in Realistic Industrial
Scenarios`, https://arxiv.org/abs/2207.05501. Key layout follows timm's ``nextvit_small``
(timm/models/nextvit.py); the original bytedance/Next-ViT layout converts through
:func:`checkpoint_filter_fn`.

Deploy mode and the norm trap: Next-ViT's pre-norms are BatchNorms placed right before a linear
map (1x1 conv or Linear), so they fold into that map's weights. The original code does this in
``merge_bn()`` *and* skips the norms whenever ``torch.onnx.is_in_onnx_export()`` is true, so an
export of an unmerged model silently drops them and computes something else. Here nothing looks
at the export state: every norm is applied in the graph until ``reparameterize()`` folds it, and
folded norms become ``nn.Identity``. A model therefore exports correctly in either mode, with the
same outputs (tested); only deploy mode is free of BatchNormalization nodes. ``reparameterize()``
folds (each block once, by :func:`edgekit.models.reparameterize_model`):

* conv -> BN pairs (stem, patch embeddings, MHCA group conv) into the conv;
* the pre-norm BN of every NCB into ``mlp.fc1``;
* NTB ``norm1`` into E-MHSA ``q``; ``norm1`` and the spatial-reduction BN into ``k`` and ``v``
  (BN commutes with the token average pooling between them); ``norm2`` into ``mlp.fc1``;
* the final BN into ``head.fc`` (global average pooling between them is linear).

E-MHSA's spatial reduction averages groups of ``sr_ratio**2`` consecutive tokens of the flattened
map, as the reference's ``AvgPool1d`` does; it is written as a static reshape + mean (one
ReduceMean) and all reshape targets are fixed at construction from ``img_size``.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from edgekit.models._heads import FPNHead
from edgekit.models._layers import DropPath, fuse_conv_bn, make_divisible, stage_outputs, to_pair
from edgekit.models._registry import ModelCfg, register_model

__all__ = ["NextViT", "NextViTSeg", "EfficientAttention", "checkpoint_filter_fn"]

NORM_EPS = 1e-5


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _bn_affine(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN as ``scale * x + shift`` per channel."""
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    return scale, bn.bias - bn.running_mean * scale


@torch.no_grad()
def merge_pre_bn(layer: nn.Linear | nn.Conv2d, *bns: nn.BatchNorm1d | nn.BatchNorm2d) -> None:
    """Fold BatchNorms applied (in order) to the *input* of a Linear or 1x1 conv into its weights.

    layer(bn_k(...bn_1(x))) == layer'(x). Only exact for maps without spatial padding (Linear,
    1x1 conv), which is where Next-ViT puts its pre-norms.
    """
    scale = torch.ones_like(bns[0].running_mean)
    shift = torch.zeros_like(bns[0].running_mean)
    for bn in bns:
        s, t = _bn_affine(bn)
        scale, shift = scale * s, shift * s + t
    w = layer.weight
    if isinstance(layer, nn.Conv2d):
        if layer.kernel_size != (1, 1) or layer.groups != 1:
            raise ValueError("a pre-norm only folds into a dense 1x1 conv")
        w2d = w[:, :, 0, 0]
    else:
        w2d = w
    extra_bias = w2d @ shift
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros(w.shape[0], dtype=w.dtype, device=w.device))
    layer.bias.add_(extra_bias)
    w.mul_(scale.reshape((1, -1) + (1,) * (w.ndim - 2)))


class ConvNormAct(nn.Module):
    """3x3 conv + BN + ReLU (stem); (B, C_in, H, W) -> (B, C_out, H/stride, W/stride)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(out_chs, eps=NORM_EPS)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))

    def reparameterize(self) -> None:
        if isinstance(self.norm, nn.BatchNorm2d):
            self.conv, self.norm = fuse_conv_bn(self.conv, self.norm), nn.Identity()


class PatchEmbed(nn.Module):
    """Optional 2x2 average pool, 1x1 conv + BN when channels change; identity otherwise.

    ``ceil_mode`` of the pool (the reference uses ceil_mode=True, count_include_pad=False) is only
    switched on for odd input sizes, known at construction; for even sizes it changes nothing
    and plain pooling exports more portably.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, in_size: tuple[int, int] = (2, 2)):
        super().__init__()
        if stride == 2:
            odd = any(s % 2 for s in in_size)
            self.pool = nn.AvgPool2d(2, 2, ceil_mode=odd, count_include_pad=False)
        else:
            self.pool = nn.Identity()
        if stride == 2 or in_chs != out_chs:
            self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)
            self.norm = nn.BatchNorm2d(out_chs, eps=NORM_EPS)
        else:
            self.conv = nn.Identity()
            self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(self.pool(x)))

    def reparameterize(self) -> None:
        if isinstance(self.norm, nn.BatchNorm2d):
            self.conv, self.norm = fuse_conv_bn(self.conv, self.norm), nn.Identity()


class ConvAttention(nn.Module):
    """Multi-head convolutional attention (MHCA): grouped 3x3 conv (one group per head) + BN +
    ReLU + 1x1 projection; (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, out_chs: int, head_dim: int):
        super().__init__()
        self.group_conv3x3 = nn.Conv2d(out_chs, out_chs, 3, 1, padding=1, groups=out_chs // head_dim, bias=False)
        self.norm = nn.BatchNorm2d(out_chs, eps=NORM_EPS)
        self.act = nn.ReLU()
        self.projection = nn.Conv2d(out_chs, out_chs, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.act(self.norm(self.group_conv3x3(x))))

    def reparameterize(self) -> None:
        if isinstance(self.norm, nn.BatchNorm2d):
            self.group_conv3x3, self.norm = fuse_conv_bn(self.group_conv3x3, self.norm), nn.Identity()


class ConvMlp(nn.Module):
    """1x1 conv -> ReLU -> 1x1 conv; (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, in_chs: int, hidden_chs: int):
        super().__init__()
        self.fc1 = nn.Conv2d(in_chs, hidden_chs, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden_chs, in_chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


# ---------------------------------------------------------------------------------------------
# blocks
# ---------------------------------------------------------------------------------------------
class NextConvBlock(nn.Module):
    """NCB: patch embed, x + MHCA(x), x + MLP(BN(x)); (B, C_in, H, W) -> (B, C_out, H/s, W/s)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, in_size: tuple[int, int] = (2, 2),
                 drop_path: float = 0.0, head_dim: int = 32, mlp_ratio: float = 3.0):
        super().__init__()
        if out_chs % head_dim:
            raise ValueError(f"out_chs {out_chs} must be a multiple of head_dim {head_dim}")
        self.deploy = False
        self.patch_embed = PatchEmbed(in_chs, out_chs, stride, in_size)
        self.mhca = ConvAttention(out_chs, head_dim)
        self.attn_drop_path = DropPath(drop_path)
        self.norm = nn.BatchNorm2d(out_chs, eps=NORM_EPS)
        self.mlp = ConvMlp(out_chs, int(out_chs * mlp_ratio))
        self.mlp_drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = x + self.attn_drop_path(self.mhca(x))
        return x + self.mlp_drop_path(self.mlp(self.norm(x)))

    def reparameterize(self) -> None:
        if self.deploy:
            return
        merge_pre_bn(self.mlp.fc1, self.norm)
        self.norm = nn.Identity()
        self.deploy = True


class EfficientAttention(nn.Module):
    """E-MHSA: multi-head self-attention whose keys/values come from a spatially reduced sequence.

    forward: (B, C, H, W) -> (B, out_dim, H, W), with (H, W) = ``feat_size`` fixed at construction.
    Queries are the H*W tokens; keys/values average every ``sr_ratio**2`` consecutive tokens
    (row-major), then a BatchNorm1d (folded away in deploy mode).
    """

    def __init__(self, dim: int, feat_size: tuple[int, int], out_dim: int | None = None, head_dim: int = 32,
                 qkv_bias: bool = True, sr_ratio: int = 1, dynamic: bool = False):
        super().__init__()
        self.dynamic = dynamic  # sequence lengths read from the input (a model for a range of sizes)
        self.dim = dim
        self.out_dim = out_dim or dim
        self.feat_size = feat_size
        self.num_heads = dim // head_dim
        self.head_dim = head_dim
        self.scale = head_dim ** -0.5
        self.sr_ratio = sr_ratio
        self.seq_len = feat_size[0] * feat_size[1]
        self.pool_len = sr_ratio ** 2
        if self.seq_len % self.pool_len:
            raise ValueError(f"{feat_size[0]}x{feat_size[1]} tokens do not split into groups of {self.pool_len}; "
                             "use an input size that is a multiple of 32")
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, self.out_dim)
        self.norm = nn.BatchNorm1d(dim, eps=NORM_EPS) if sr_ratio > 1 else nn.Identity()

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax attention core: q (B, heads, Nq, d), k/v (B, heads, Nkv, d) -> (B, heads, Nq, d)."""
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if bias is not None:
            attn = attn + bias
        return attn.softmax(dim=-1) @ v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, n, h, d = self.dim, self.seq_len, self.num_heads, self.head_dim  # static: no Shape ops in export
        size = self.feat_size
        if self.dynamic:  # symbolic in an export with dynamic height and width
            size = (x.shape[-2], x.shape[-1])
            n = size[0] * size[1]
        n_kv = n // self.pool_len
        seq = x.reshape(-1, c, n)  # (B, C, N)
        tokens = seq.transpose(1, 2)  # (B, N, C)
        if self.pool_len > 1:  # constructor config
            reduced = seq.reshape(-1, c, n_kv, self.pool_len).mean(-1)  # == AvgPool1d(sr^2) over tokens
            kv = self.norm(reduced).transpose(1, 2)  # (B, N/sr^2, C)
        else:
            kv = tokens
        q = self.q(tokens).reshape(-1, n, h, d).transpose(1, 2)
        k = self.k(kv).reshape(-1, n_kv, h, d).transpose(1, 2)
        v = self.v(kv).reshape(-1, n_kv, h, d).transpose(1, 2)
        out = self._attention(q, k, v).transpose(1, 2).reshape(-1, n, c)  # (B, N, C)
        out = self.proj(out)
        return out.transpose(1, 2).reshape(-1, self.out_dim, *size)


class NextTransformerBlock(nn.Module):
    """NTB: E-MHSA on ~75 % of the channels, MHCA on the rest, concatenated, then MLP.

    (B, C_in, H_in, W_in) -> (B, out_chs, H, W); ``feat_size`` is the output (H, W).
    """

    def __init__(self, in_chs: int, out_chs: int, feat_size: tuple[int, int], stride: int = 1,
                 in_size: tuple[int, int] = (2, 2), drop_path: float = 0.0, sr_ratio: int = 1,
                 mlp_ratio: float = 2.0, head_dim: int = 32, mix_block_ratio: float = 0.75, dynamic: bool = False):
        super().__init__()
        self.deploy = False
        self.mhsa_out_chs = make_divisible(int(out_chs * mix_block_ratio), 32)
        self.mhca_out_chs = out_chs - self.mhsa_out_chs
        self.patch_embed = PatchEmbed(in_chs, self.mhsa_out_chs, stride, in_size)
        self.norm1 = nn.BatchNorm2d(self.mhsa_out_chs, eps=NORM_EPS)
        self.e_mhsa = EfficientAttention(self.mhsa_out_chs, feat_size, head_dim=head_dim, sr_ratio=sr_ratio,
                                         dynamic=dynamic)
        self.mhsa_drop_path = DropPath(drop_path * mix_block_ratio)
        self.projection = PatchEmbed(self.mhsa_out_chs, self.mhca_out_chs, 1)
        self.mhca = ConvAttention(self.mhca_out_chs, head_dim)
        self.mhca_drop_path = DropPath(drop_path * (1 - mix_block_ratio))
        self.norm2 = nn.BatchNorm2d(out_chs, eps=NORM_EPS)
        self.mlp = ConvMlp(out_chs, int(out_chs * mlp_ratio))
        self.mlp_drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = x + self.mhsa_drop_path(self.e_mhsa(self.norm1(x)))
        out = self.projection(x)
        out = out + self.mhca_drop_path(self.mhca(out))
        x = torch.cat([x, out], dim=1)
        return x + self.mlp_drop_path(self.mlp(self.norm2(x)))

    def reparameterize(self) -> None:
        if self.deploy:
            return
        attn = self.e_mhsa
        merge_pre_bn(attn.q, self.norm1)
        kv_norms = (self.norm1, attn.norm) if isinstance(attn.norm, nn.BatchNorm1d) else (self.norm1,)
        merge_pre_bn(attn.k, *kv_norms)
        merge_pre_bn(attn.v, *kv_norms)
        attn.norm = nn.Identity()
        self.norm1 = nn.Identity()
        merge_pre_bn(self.mlp.fc1, self.norm2)
        self.norm2 = nn.Identity()
        self.deploy = True


# ---------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------
class NextStage(nn.Module):
    """A sequence of NCB / NTB blocks; the first one may downsample by 2."""

    def __init__(self, in_chs: int, block_chs: Sequence[int], block_types: Sequence[str], in_size: tuple[int, int],
                 stride: int = 2, sr_ratio: int = 1, mix_block_ratio: float = 0.75, head_dim: int = 32,
                 drop_path: Sequence[float] = (), dynamic: bool = False):
        super().__init__()
        self.out_size = (in_size[0] // stride, in_size[1] // stride)
        drop_path = list(drop_path) or [0.0] * len(block_chs)
        blocks, size = [], in_size
        for i, (out_chs, kind) in enumerate(zip(block_chs, block_types)):
            s = stride if i == 0 else 1
            if kind == "ncb":
                blocks.append(NextConvBlock(in_chs, out_chs, s, size, drop_path[i], head_dim))
            else:
                blocks.append(NextTransformerBlock(in_chs, out_chs, self.out_size, s, size, drop_path[i],
                                                   sr_ratio, head_dim=head_dim, mix_block_ratio=mix_block_ratio,
                                                   dynamic=dynamic))
            in_chs, size = out_chs, self.out_size
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
class ClassifierHead(nn.Module):
    """Global average pool + Linear; (B, C, H, W) -> (B, num_classes)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(x)


class NextViT(nn.Module):
    """Next-ViT for one input size ``img_size`` (sequence lengths of E-MHSA are fixed by it).

    forward: (B, 3, H, W) -> (B, num_classes), or with ``features_only=True`` the four stage
    outputs (B, C_i, H / 2^(i+2), W / 2^(i+2)), C = (96, 256, 512, 1024) for Next-ViT-S.
    """

    def __init__(self, img_size: int | Sequence[int] = 224, in_chans: int = 3, num_classes: int = 1000,
                 stem_chs: Sequence[int] = (64, 32, 64), depths: Sequence[int] = (3, 4, 10, 3),
                 strides: Sequence[int] = (1, 2, 2, 2), sr_ratios: Sequence[int] = (8, 4, 2, 1),
                 drop_path_rate: float = 0.1, head_dim: int = 32, mix_block_ratio: float = 0.75,
                 features_only: bool = False, dynamic_size: bool = False):
        super().__init__()
        self.img_size = to_pair(img_size)
        # E-MHSA reads its sequence lengths from the input: one model for every multiple of 32
        self.dynamic_size = dynamic_size
        if self.img_size[0] % 32 or self.img_size[1] % 32:
            raise ValueError(f"img_size {self.img_size} must be a multiple of 32")
        self.num_classes = num_classes
        self.features_only = features_only
        self.deploy = False
        stage_chs = [
            [96] * depths[0],
            [192] * (depths[1] - 1) + [256],
            [384, 384, 384, 384, 512] * (depths[2] // 5),
            [768] * (depths[3] - 1) + [1024],
        ]
        stage_types = [
            ["ncb"] * depths[0],
            ["ncb"] * (depths[1] - 1) + ["ntb"],
            ["ncb", "ncb", "ncb", "ncb", "ntb"] * (depths[2] // 5),
            ["ncb"] * (depths[3] - 1) + ["ntb"],
        ]
        self.feature_channels = tuple(c[-1] for c in stage_chs)
        self.num_features = stage_chs[-1][-1]

        self.stem = nn.Sequential(
            ConvNormAct(in_chans, stem_chs[0], 3, 2),
            ConvNormAct(stem_chs[0], stem_chs[1], 3, 1),
            ConvNormAct(stem_chs[1], stem_chs[2], 3, 1),
            ConvNormAct(stem_chs[2], stem_chs[2], 3, 2),
        )
        size = (self.img_size[0] // 4, self.img_size[1] // 4)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        stages, in_chs = [], stem_chs[-1]
        for i in range(len(depths)):
            stage = NextStage(in_chs, stage_chs[i], stage_types[i], size, strides[i], sr_ratios[i], mix_block_ratio,
                              head_dim, dpr[sum(depths[:i]):sum(depths[:i + 1])], dynamic=dynamic_size)
            stages.append(stage)
            in_chs, size = stage_chs[i][-1], stage.out_size
        self.stages = nn.Sequential(*stages)
        if not features_only:
            self.norm = nn.BatchNorm2d(self.num_features, eps=NORM_EPS)
            self.head = ClassifierHead(self.num_features, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        if self.dynamic_size:
            return  # sizes are the envelope's to check (edgekit.shapes), not a branch in the graph
        # E-MHSA reshapes use sequence lengths fixed for img_size; another size could even reshape
        # "successfully" into a wrong batch, so fail loudly. Under tracing the comparison runs on
        # the example input and records nothing, so its TracerWarning is noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            ok = tuple(int(s) for s in x.shape[-2:]) == self.img_size
        if not ok:
            raise ValueError(f"model built for {self.img_size}, got input {tuple(x.shape[-2:])}; "
                             "rebuild it with img_size=(H, W)")

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> four NCHW maps at strides 4, 8, 16, 32."""
        self._check_input(x)
        return stage_outputs(x, self.stem, self.stages)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1024, H/32, W/32), after the final norm."""
        self._check_input(x)
        return self.norm(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.features_only:
            return self.forward_intermediates(x)
        return self.forward_head(self.forward_features(x))

    def reparameterize(self) -> None:
        """Fold the final BN into the classifier (average pooling between them is linear)."""
        if self.deploy or self.features_only:
            return
        if not isinstance(self.head.fc, nn.Linear):
            return  # headless: the norm stays, as there is nothing to fold it into
        merge_pre_bn(self.head.fc, self.norm)
        self.norm = nn.Identity()
        self.deploy = True


class NextViTSeg(nn.Module):
    """Next-ViT backbone + FPN decoder; (B, 3, H, W) -> (B, num_classes, H/4, W/4) logits."""

    def __init__(self, img_size: int | Sequence[int] = 512, num_classes: int = 150, decoder_channels: int = 128,
                 **backbone_kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = NextViT(img_size=img_size, features_only=True, **backbone_kwargs)
        self.decode_head = FPNHead(self.backbone.feature_channels, num_classes, channels=decoder_channels,
                                   in_strides=(4, 8, 16, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.backbone.forward_intermediates(x))

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's four NCHW maps, strides 4, 8, 16, 32."""
        return self.backbone.forward_intermediates(x)


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------
def _original_block_map(depths: Sequence[int]) -> dict[int, str]:
    """Flat block index of the original ``features.{k}`` -> ``stages.{i}.blocks.{j}``."""
    out, k = {}, 0
    for i, depth in enumerate(depths):
        for j in range(depth):
            out[k] = f"stages.{i}.blocks.{j}"
            k += 1
    return out


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """Convert a Next-ViT checkpoint (train-mode, BNs not merged) to this model's keys.

    Accepted layouts:

    * timm ``nextvit_small``: ``stem.{0-3}.{conv,norm}``, ``stages.{i}.blocks.{j}`` with NCB
      ``patch_embed.{conv,norm}``, ``mhca.{group_conv3x3,norm,projection}``, ``norm``,
      ``mlp.{fc1,fc2}`` and NTB ``norm1``, ``e_mhsa.{q,k,v,proj,norm}``, ``projection.{conv,norm}``,
      ``mhca``, ``norm2``, ``mlp``; ``norm``, ``head.fc``: identical keys.
    * the original bytedance/Next-ViT layout: blocks flat in ``features.{k}``, MLP convs
      ``mlp.conv1`` / ``mlp.conv2``, classifier ``proj_head.0``; otherwise the same names.
      Blocks are renamed by position in the stages, not by key order. ``{"model": ...}`` and
      ``{"state_dict": ...}`` wrappers are unwrapped; a ``backbone.`` prefix (the original
      detection/segmentation checkpoints) is accepted, other detector/segmentor parts dropped.

    Checkpoints saved after ``merge_bn()`` (norms folded, biases added) are not accepted: they are
    already deploy-mode and no longer hold the norms this model applies in train mode.

    For :class:`NextViTSeg`, a classification checkpoint initialises ``backbone.*`` (final norm and
    classifier dropped; load with ``strict=False``, the FPN decoder stays at its init).
    """
    state_dict = state_dict.get("model", state_dict)
    state_dict = state_dict.get("state_dict", state_dict)
    seg = isinstance(model, NextViTSeg)
    backbone = model.backbone if seg else model
    depths = [len(s.blocks) for s in backbone.stages]
    block_map = _original_block_map(depths)
    out = {}
    for k, v in state_dict.items():
        if seg and k.startswith("decode_head.") and k in model.state_dict():
            out[k] = v  # zoo-layout decoder
            continue
        if k.startswith(("neck.", "decode_head.", "auxiliary_head.")):
            continue  # a detector's / segmentor's own head: not this model's decoder
        k = k.removeprefix("backbone.")
        k = re.sub(r"^features\.(\d+)\.", lambda m: block_map[int(m.group(1))] + ".", k)
        k = k.replace(".mlp.conv1.", ".mlp.fc1.").replace(".mlp.conv2.", ".mlp.fc2.")
        k = re.sub(r"^proj_head\.0\.", "head.fc.", k)
        if seg:
            if k.startswith(("norm.", "head.")):
                continue
            k = "backbone." + k
        out[k] = v
    return out


def _create_nextvit(variant: str, seg: bool = False, **kwargs) -> nn.Module:
    if "img_size" in kwargs:
        kwargs["img_size"] = to_pair(kwargs["img_size"])
    model = NextViTSeg(**kwargs) if seg else NextViT(**kwargs)
    model.variant = variant
    return model


# ---------------------------------------------------------------------------------------------
# registered variants
# ---------------------------------------------------------------------------------------------
@register_model(ModelCfg(
    family="nextvit", task="classification", input_size=(3, 224, 224), num_classes=1000, interpolation="bicubic",
    labels="imagenet", size_divisor=32, reference={"timm": "nextvit_small"},
    description="Next-ViT-S (NCB + NTB, BatchNorm only), ImageNet-1k classification (timm key layout)"))
def nextvit_small(**kwargs) -> NextViT:
    args = dict(stem_chs=(64, 32, 64), depths=(3, 4, 10, 3), drop_path_rate=0.1)
    return _create_nextvit("nextvit_small", **{**args, **kwargs})


@register_model(ModelCfg(
    family="nextvit", task="segmentation", input_size=(3, 512, 512), num_classes=150, labels="ade20k",
    output_stride=4, size_divisor=32, reference={"timm": "nextvit_small"},
    description="Next-ViT-S backbone + light FPN decoder, ADE20K semantic segmentation"))
def nextvit_small_seg(**kwargs) -> NextViTSeg:
    args = dict(img_size=(512, 512), num_classes=150, stem_chs=(64, 32, 64), depths=(3, 4, 10, 3),
                drop_path_rate=0.2)
    return _create_nextvit("nextvit_small_seg", seg=True, **{**args, **kwargs})
