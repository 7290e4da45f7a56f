"""RepViT: a mobile CNN restructured along ViT lines (Wang et al., 2023, https://arxiv.org/abs/2307.09283).

The zoo keeps it as the pure-CNN control for quantization studies: no attention, no LayerNorm, only
convs, BatchNorm, GELU and squeeze-excite, so any INT8 gap it shows is the conv path's, not the
attention's.

Module names mirror timm's ``timm/models/repvit.py`` (``repvit_m1_1``), so a timm state dict loads
as is. What differs is the deploy path: every branch owns ``reparameterize()``, and
``edgekit.models.reparameterize_model`` merges

* each Conv+BN (``ConvNorm``) into one conv,
* the RepVGG-style depthwise token mixer (3x3 dw + 1x1 dw + identity, then BN) into one 3x3 dw conv,
* the BatchNorm1d + Linear classifier heads, and the two distillation heads, into one Linear.

Nothing depends on the input resolution (no attention), so any H, W that are multiples of 32 work.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from edgekit.models._layers import ConvNorm, make_divisible, stage_outputs
from edgekit.models._registry import ModelCfg, register_model

__all__ = ["RepVit", "checkpoint_filter_fn"]


# ---------------------------------------------------------------------------------------------
# helpers


class SqueezeExcite(nn.Module):
    """Squeeze-excite gate (B, C, H, W) -> (B, C, H, W); key names as timm's ``SEModule``."""

    def __init__(self, chs: int, rd_ratio: float = 0.25, rd_divisor: int = 8):
        super().__init__()
        rd_chs = make_divisible(chs * rd_ratio, rd_divisor)
        self.fc1 = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(rd_chs, chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(s))))


class NormLinear(nn.Module):
    """BatchNorm1d -> Linear, (B, C) -> (B, out); ``reparameterize()`` folds the BN into the Linear."""

    def __init__(self, in_features: int, out_features: int, std: float = 0.02):
        super().__init__()
        self.bn = nn.BatchNorm1d(in_features)
        self.l = nn.Linear(in_features, out_features)
        nn.init.trunc_normal_(self.l.weight, std=std)
        nn.init.zeros_(self.l.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l(self.bn(x))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if isinstance(self.bn, nn.Identity):
            return
        bn = self.bn
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        shift = bn.bias - bn.running_mean * scale
        fused = nn.Linear(self.l.in_features, self.l.out_features).to(self.l.weight)
        # l(bn(x)) = W (scale * x + shift) + b: the BN scale goes on the input columns.
        fused.weight.copy_(self.l.weight * scale[None, :])
        fused.bias.copy_(self.l.weight @ shift + self.l.bias)
        self.l, self.bn = fused, nn.Identity()


# ---------------------------------------------------------------------------------------------
# blocks


class RepVggDw(nn.Module):
    """RepVGG-style depthwise token mixer: BN(dw3x3_bn(x) + dw1x1(x) + x), (B, C, H, W) -> same.

    ``reparameterize()`` folds the three branches and the trailing BN into one 3x3 depthwise conv
    (``self.conv.c``) and deletes ``conv1`` and ``bn``.
    """

    def __init__(self, dim: int, kernel_size: int = 3):
        super().__init__()
        self.conv = ConvNorm(dim, dim, kernel_size, 1, (kernel_size - 1) // 2, groups=dim)
        self.conv1 = nn.Conv2d(dim, dim, 1, 1, 0, groups=dim)
        self.bn = nn.BatchNorm2d(dim)
        self.kernel_size = kernel_size
        self.fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:  # structural flag, fixed before export: tracing sees one branch only
            return self.conv(x)
        return self.bn(self.conv(x) + self.conv1(x) + x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.fused:
            return
        self.conv.reparameterize()  # idempotent: the tree walker may already have folded it
        conv = self.conv.c
        pad = (self.kernel_size - 1) // 2
        weight = conv.weight + F.pad(self.conv1.weight, [pad] * 4)
        weight[:, 0, pad, pad] += 1.0  # identity branch of a depthwise conv
        bias = conv.bias + self.conv1.bias
        # trailing BN: y = s * (conv(x) + b) + t
        bn = self.bn
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        conv.weight.copy_(weight * scale[:, None, None, None])
        conv.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
        del self.conv1, self.bn
        self.fused = True


class RepVitMlp(nn.Module):
    """1x1 ConvNorm -> act -> 1x1 ConvNorm (zero-init BN gamma), (B, C, H, W) -> same."""

    def __init__(self, in_dim: int, hidden_dim: int, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.conv1 = ConvNorm(in_dim, hidden_dim, 1)
        self.act = act_layer()
        self.conv2 = ConvNorm(hidden_dim, in_dim, 1, bn_weight_init=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class RepViTBlock(nn.Module):
    """token mixer -> (SE) -> x + channel mixer(x), (B, C, H, W) -> same.

    The token mixer carries its own identity (inside ``RepVggDw``), so only the channel mixer has an
    explicit residual.
    """

    def __init__(self, dim: int, mlp_ratio: float, kernel_size: int, use_se: bool,
                 act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.token_mixer = RepVggDw(dim, kernel_size)
        self.se = SqueezeExcite(dim, 0.25) if use_se else nn.Identity()
        self.channel_mixer = RepVitMlp(dim, int(dim * mlp_ratio), act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.token_mixer(x))
        return x + self.channel_mixer(x)


class RepVitStem(nn.Module):
    """Two stride-2 3x3 ConvNorms, (B, 3, H, W) -> (B, C, H/4, W/4)."""

    def __init__(self, in_chs: int, out_chs: int, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.conv1 = ConvNorm(in_chs, out_chs // 2, 3, 2, 1)
        self.act1 = act_layer()
        self.conv2 = ConvNorm(out_chs // 2, out_chs, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act1(self.conv1(x)))


class RepVitDownsample(nn.Module):
    """Block -> stride-2 dw ConvNorm -> 1x1 ConvNorm -> residual FFN, (B, C, H, W) -> (B, C', H/2, W/2)."""

    def __init__(self, in_dim: int, mlp_ratio: float, out_dim: int, kernel_size: int,
                 act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.pre_block = RepViTBlock(in_dim, mlp_ratio, kernel_size, use_se=False, act_layer=act_layer)
        self.spatial_downsample = ConvNorm(in_dim, in_dim, kernel_size, 2, (kernel_size - 1) // 2, groups=in_dim)
        self.channel_downsample = ConvNorm(in_dim, out_dim, 1)
        self.ffn = RepVitMlp(out_dim, int(out_dim * mlp_ratio), act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel_downsample(self.spatial_downsample(self.pre_block(x)))
        return x + self.ffn(x)


class RepVitClassifier(nn.Module):
    """Pooled features (B, C) -> logits (B, num_classes).

    With distillation (timm's default for RepViT) there are two heads and the output is their mean,
    which is what timm returns in eval (and in training unless distilled training is switched on).
    ``reparameterize()`` merges the two heads into ``head``: mean of two affine maps is affine.
    """

    def __init__(self, dim: int, num_classes: int, distillation: bool = True):
        super().__init__()
        self.head = NormLinear(dim, num_classes) if num_classes > 0 else nn.Identity()
        self.head_dist = NormLinear(dim, num_classes) if distillation and num_classes > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head_dist is None:
            return self.head(x)
        return (self.head(x) + self.head_dist(x)) / 2

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.head_dist is None:
            return
        self.head.reparameterize()
        self.head_dist.reparameterize()
        a, b = self.head.l, self.head_dist.l
        a.weight.copy_((a.weight + b.weight) / 2)
        a.bias.copy_((a.bias + b.bias) / 2)
        self.head_dist = None


# ---------------------------------------------------------------------------------------------
# stages


class RepVitStage(nn.Module):
    """(Downsample) -> ``depth`` blocks, SE on every other block starting with the first."""

    def __init__(self, in_dim: int, out_dim: int, depth: int, mlp_ratio: float, kernel_size: int = 3,
                 downsample: bool = True, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        if downsample:
            self.downsample = RepVitDownsample(in_dim, mlp_ratio, out_dim, kernel_size, act_layer)
        else:
            assert in_dim == out_dim, "a stage without downsample keeps its width"
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[
            RepViTBlock(out_dim, mlp_ratio, kernel_size, use_se=i % 2 == 0, act_layer=act_layer)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


# ---------------------------------------------------------------------------------------------
# model


class RepVit(nn.Module):
    """RepViT classifier, (B, 3, H, W) -> (B, num_classes); H, W multiples of 32.

    img_size is accepted for a uniform factory surface; nothing here depends on it.
    """

    def __init__(self, embed_dim: tuple[int, ...] = (48,), depth: tuple[int, ...] = (2,), mlp_ratio: float = 2,
                 kernel_size: int = 3, num_classes: int = 1000, in_chans: int = 3,
                 img_size: tuple[int, int] = (224, 224), distillation: bool = True, drop_rate: float = 0.0,
                 act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.num_classes = num_classes
        self.img_size = tuple(img_size)
        self.stem = RepVitStem(in_chans, embed_dim[0], act_layer)
        stages, in_dim = [], embed_dim[0]
        for i, (dim, d) in enumerate(zip(embed_dim, depth)):
            stages.append(RepVitStage(in_dim, dim, d, mlp_ratio, kernel_size, downsample=i > 0, act_layer=act_layer))
            in_dim = dim
        self.stages = nn.Sequential(*stages)
        self.num_features = embed_dim[-1]
        self.head_drop = nn.Dropout(drop_rate)
        self.head = RepVitClassifier(embed_dim[-1], num_classes, distillation)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, H/32, W/32)."""
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, C, h, w) -> (B, num_classes), or pooled (B, C) with pre_logits."""
        x = self.head_drop(x.mean((2, 3)))
        return x if pre_logits else self.head(x)

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> every stage's output, NCHW, in order of stride (the maps ``--features`` picks from)."""
        return stage_outputs(x, self.stem, self.stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# ---------------------------------------------------------------------------------------------
# checkpoints and factories


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """timm ``repvit_*`` (non-legacy, i.e. m0_9 / m1_0 / m1_1 / m1_5 / m2_3) state dict -> zoo keys.

    The zoo mirrors timm's module names, so this only unwraps a ``{"model": ...}`` /
    ``{"state_dict": ...}`` container and strips a DataParallel ``module.`` prefix. The original
    repository (jameslahm/RepViT, ``features.N`` / ``classifier.*`` keys) is not converted; load it
    through timm's own conversion first. A deploy-mode (reparameterized) model has different keys:
    reparameterize after loading, not before.
    """
    for container in ("model", "state_dict"):
        if container in state_dict and isinstance(state_dict[container], dict):
            state_dict = state_dict[container]
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


def _create_repvit(img_size: tuple[int, int] = (224, 224), **kwargs) -> RepVit:
    return RepVit(img_size=tuple(img_size), **kwargs)


@register_model(ModelCfg(
    family="repvit", input_size=(3, 224, 224), interpolation="bicubic", size_divisor=32,
    reference={"timm": "repvit_m1_1"}, description="RepViT-M1.1: pure-CNN ViT-shaped mobile net (quantization control)",
))
def repvit_m1_1(**kwargs) -> RepVit:
    model_args = dict(embed_dim=(64, 128, 256, 512), depth=(2, 2, 12, 2))
    return _create_repvit(**dict(model_args, **kwargs))
