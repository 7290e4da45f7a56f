"""EfficientViT (MIT Han lab, "B" series): ReLU linear attention with multi-scale tokens, BN + hardswish.

Paper: "EfficientViT: Multi-Scale Linear Attention for High-Resolution Dense Prediction", Cai et al., ICCV 2023.
Original code: https://github.com/mit-han-lab/efficientvit; timm port: timm/models/efficientvit_mit.py.

Two heads on one backbone:
- ``EfficientVit``: ImageNet classification, module names identical to timm's ``efficientvit_b0..b3``
  (a timm state dict loads unchanged).
- ``EfficientVitSeg``: the original repo's SegHead (``efficientvit/models/efficientvit/seg.py``): the stride
  8/16/32 features are projected to one width, upsampled to stride 8, summed, refined by MBConv blocks and
  classified at output stride 8. Its ``stem`` / ``stages`` carry the same names as the classifier's, so
  timm classification weights initialise the segmentation backbone too.

Deploy-relevant choices (see docs/models/efficientvit.md):
- The original LiteMLA picks quadratic or linear attention from the token count at run time
  (``H * W > dim``). Here it is constructor config (``attn_impl``), resolved per stage from ``img_size``
  when "auto", so tracing never freezes a hidden branch.
- The attention core ``LiteMLA._linear_attention(q, k, v)`` runs in fp32 with ``eps`` >= 1e-6; the
  original's 1e-15 is below fp16's smallest subnormal (~6e-8) and vanishes when a runtime lowers it.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.models._layers import fuse_conv_bn, stage_outputs, to_pair
from edgekit.models._registry import ModelCfg, register_model

__all__ = ["EfficientVit", "EfficientVitSeg", "LiteMLA", "checkpoint_filter_fn"]

ATTN_IMPLS = ("linear", "quadratic", "auto")
MIN_EPS = 1e-6


def _downsampled(size: tuple[int, int], times: int) -> tuple[int, int]:
    """Spatial size after ``times`` stride-2 convs with 'same' padding (each rounds up)."""
    h, w = size
    for _ in range(times):
        h, w = (h + 1) // 2, (w + 1) // 2
    return h, w


# --------------------------------------------------------------------------------------------- blocks

class ConvNormAct(nn.Module):
    """Conv2d -> optional BatchNorm2d -> optional activation; ``reparameterize()`` folds the BN."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 bias: bool = False, norm_layer: type[nn.Module] | None = nn.BatchNorm2d,
                 act_layer: type[nn.Module] | None = nn.ReLU):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=bias)
        self.norm = norm_layer(out_chs) if norm_layer is not None else nn.Identity()
        self.act = act_layer() if act_layer is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))

    def reparameterize(self) -> None:
        if isinstance(self.norm, nn.BatchNorm2d):
            self.conv = fuse_conv_bn(self.conv, self.norm)
            self.norm = nn.Identity()


def _per_conv(v, n: int) -> tuple:
    """One value per conv of a block: a scalar is repeated, a tuple is taken as is."""
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


class DSConv(nn.Module):
    """Depthwise 3x3 -> pointwise 1x1 (stem blocks, and the stride-2 entry of narrow stages)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, bias=False, norm_layer=nn.BatchNorm2d,
                 act_layer=(nn.Hardswish, None)):
        super().__init__()
        bias, norm_layer, act_layer = _per_conv(bias, 2), _per_conv(norm_layer, 2), _per_conv(act_layer, 2)
        self.depth_conv = ConvNormAct(in_chs, in_chs, 3, stride, groups=in_chs, bias=bias[0],
                                      norm_layer=norm_layer[0], act_layer=act_layer[0])
        self.point_conv = ConvNormAct(in_chs, out_chs, 1, bias=bias[1], norm_layer=norm_layer[1],
                                      act_layer=act_layer[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise 3x3 (stride) -> 1x1 project."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, expand_ratio: float = 4, bias=False,
                 norm_layer=nn.BatchNorm2d, act_layer=(nn.Hardswish, nn.Hardswish, None)):
        super().__init__()
        bias, norm_layer, act_layer = _per_conv(bias, 3), _per_conv(norm_layer, 3), _per_conv(act_layer, 3)
        mid_chs = round(in_chs * expand_ratio)
        self.inverted_conv = ConvNormAct(in_chs, mid_chs, 1, bias=bias[0], norm_layer=norm_layer[0],
                                         act_layer=act_layer[0])
        self.depth_conv = ConvNormAct(mid_chs, mid_chs, 3, stride, groups=mid_chs, bias=bias[1],
                                      norm_layer=norm_layer[1], act_layer=act_layer[1])
        self.point_conv = ConvNormAct(mid_chs, out_chs, 1, bias=bias[2], norm_layer=norm_layer[2],
                                      act_layer=act_layer[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


class ResidualBlock(nn.Module):
    """``main(x) + x`` when ``shortcut``, else ``main(x)`` (stride-2 / width-changing entries)."""

    def __init__(self, main: nn.Module, shortcut: bool = True):
        super().__init__()
        self.main = main
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + x if self.shortcut else self.main(x)


class LiteMLA(nn.Module):
    """Lightweight multi-scale ReLU linear attention.

    x (B, C, H, W) -> 1x1 qkv conv -> plus one depthwise-kxk + grouped-1x1 aggregation per scale (multi-scale
    tokens; each scale adds ``heads`` more heads) -> ReLU-kernel attention over the N = H*W tokens, per head of
    width ``head_dim`` -> 1x1 proj + BN -> (B, out_chs, H, W).

    quadratic: compute the same ReLU attention through the explicit (N, N) map instead of the (d, d) state.
        Both are algebraically equal; the original switches to quadratic when N <= head_dim because it is
        then cheaper. Here the choice is made once at construction (never from the traced shape).
    eps: added to the attention normaliser; at least 1e-6 so it survives fp16 (the original's 1e-15 does not).
    """

    def __init__(self, in_chs: int, out_chs: int, head_dim: int = 8, heads_ratio: float = 1.0,
                 scales: tuple[int, ...] = (5,), norm_layer: type[nn.Module] = nn.BatchNorm2d,
                 eps: float = 1e-5, quadratic: bool = False):
        super().__init__()
        if eps < MIN_EPS:
            raise ValueError(f"LiteMLA eps={eps} < {MIN_EPS}: it underflows in fp16")
        heads = int(in_chs // head_dim * heads_ratio)
        total_dim = heads * head_dim
        self.dim = head_dim
        self.eps = eps
        self.quadratic = quadratic
        self.qkv = ConvNormAct(in_chs, 3 * total_dim, 1, norm_layer=None, act_layer=None)
        self.aggreg = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(3 * total_dim, 3 * total_dim, s, padding=s // 2, groups=3 * total_dim, bias=False),
                nn.Conv2d(3 * total_dim, 3 * total_dim, 1, groups=3 * heads, bias=False),
            )
            for s in scales
        ])
        self.proj = ConvNormAct(total_dim * (1 + len(scales)), out_chs, 1, norm_layer=norm_layer, act_layer=None)

    def _linear_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k, v (B, heads, N, d), before the ReLU kernel -> (B, heads, N, d) in the input dtype.

        out_n = sum_m (q_n . k_m) v_m / (sum_m q_n . k_m + eps), with q, k = relu(q), relu(k), computed through
        the (d, d) state k^T v so the cost is linear in N. Always fp32 (autocast off): the normaliser is a sum
        over all N tokens and overflows / loses the eps in half precision.
        """
        dtype = q.dtype
        with torch.autocast(device_type=q.device.type, enabled=False):
            if dtype != torch.float32:
                q, k, v = q.float(), k.float(), v.float()
            q, k = F.relu(q), F.relu(k)
            kv = k.transpose(-1, -2) @ v  # (B, heads, d, d)
            k_sum = k.sum(dim=-2, keepdim=True)  # (B, heads, 1, d)
            out = (q @ kv) / ((q * k_sum).sum(dim=-1, keepdim=True) + self.eps)
        return out.to(dtype)

    def _quadratic_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Same contract and result as ``_linear_attention``, through the (N, N) map (cheaper when N <= d)."""
        dtype = q.dtype
        with torch.autocast(device_type=q.device.type, enabled=False):
            if dtype != torch.float32:
                q, k, v = q.float(), k.float(), v.float()
            attn = F.relu(q) @ F.relu(k).transpose(-1, -2)  # (B, heads, N, N)
            attn = attn / (attn.sum(dim=-1, keepdim=True) + self.eps)
            out = attn @ v
        return out.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        qkv = self.qkv(x)
        qkv = torch.cat([qkv] + [op(qkv) for op in self.aggreg], dim=1)
        # channels are laid out head by head as [q (d) | k (d) | v (d)]
        qkv = qkv.reshape(B, -1, 3 * self.dim, H * W).transpose(-1, -2)  # (B, heads', N, 3d)
        q, k, v = qkv.chunk(3, dim=-1)
        out = self._quadratic_attention(q, k, v) if self.quadratic else self._linear_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(B, -1, H, W)
        return self.proj(out)


class EfficientVitBlock(nn.Module):
    """Global context (LiteMLA) then local mixing (MBConv), each residual. (B, C, H, W) -> same."""

    def __init__(self, in_chs: int, head_dim: int = 32, expand_ratio: float = 4,
                 norm_layer: type[nn.Module] = nn.BatchNorm2d, act_layer: type[nn.Module] = nn.Hardswish,
                 eps: float = 1e-5, quadratic: bool = False):
        super().__init__()
        self.context_module = ResidualBlock(
            LiteMLA(in_chs, in_chs, head_dim=head_dim, norm_layer=norm_layer, eps=eps, quadratic=quadratic))
        self.local_module = ResidualBlock(
            MBConv(in_chs, in_chs, expand_ratio=expand_ratio, bias=(True, True, False),
                   norm_layer=(None, None, norm_layer), act_layer=(act_layer, act_layer, None)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))


# --------------------------------------------------------------------------------------------- stages

def _local_block(in_chs: int, out_chs: int, stride: int, expand_ratio: float, norm_layer, act_layer,
                 fewer_norm: bool = False) -> nn.Module:
    # fewer_norm (attention stages): the first convs carry a bias instead of a BN
    if expand_ratio == 1:
        return DSConv(in_chs, out_chs, stride, bias=(True, False) if fewer_norm else False,
                      norm_layer=(None, norm_layer) if fewer_norm else norm_layer, act_layer=(act_layer, None))
    return MBConv(in_chs, out_chs, stride, expand_ratio, bias=(True, True, False) if fewer_norm else False,
                  norm_layer=(None, None, norm_layer) if fewer_norm else norm_layer,
                  act_layer=(act_layer, act_layer, None))


class Stem(nn.Sequential):
    """Stride-2 3x3 conv then ``depth`` residual DSConvs: (B, 3, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, norm_layer, act_layer):
        super().__init__()
        self.add_module("in_conv", ConvNormAct(in_chs, out_chs, 3, 2, norm_layer=norm_layer, act_layer=act_layer))
        for i in range(depth):
            self.add_module(f"res{i}", ResidualBlock(_local_block(out_chs, out_chs, 1, 1, norm_layer, act_layer)))


class EfficientVitStage(nn.Module):
    """Stride-2 MBConv entry, then ``depth - 1`` MBConvs (conv stage) or ``depth`` EfficientVitBlocks."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, norm_layer, act_layer, expand_ratio: float,
                 head_dim: int, vit_stage: bool = False, eps: float = 1e-5, quadratic: bool = False):
        super().__init__()
        blocks = [ResidualBlock(_local_block(in_chs, out_chs, 2, expand_ratio, norm_layer, act_layer,
                                             fewer_norm=vit_stage), shortcut=False)]
        if vit_stage:
            blocks += [EfficientVitBlock(out_chs, head_dim, expand_ratio, norm_layer, act_layer, eps, quadratic)
                       for _ in range(depth)]
        else:
            blocks += [ResidualBlock(_local_block(out_chs, out_chs, 1, expand_ratio, norm_layer, act_layer))
                       for _ in range(depth - 1)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def _resolve_quadratic(attn_impl: str, img_size: tuple[int, int], stage_idx: int, head_dim: int) -> bool:
    if attn_impl not in ATTN_IMPLS:
        raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}")
    if attn_impl != "auto":
        return attn_impl == "quadratic"
    h, w = _downsampled(img_size, stage_idx + 2)  # stem /2, then /2 per stage
    return h * w <= head_dim  # the original's run-time rule, applied at the built resolution


def _build_trunk(module: nn.Module, in_chans: int, widths: Sequence[int], depths: Sequence[int], head_dim: int,
                 expand_ratio: float, norm_layer, act_layer, img_size: tuple[int, int], attn_impl: str,
                 eps: float) -> None:
    """Give ``module`` the shared backbone (``stem``, ``stages``, ``feature_info``) under timm's names."""
    module.stem = Stem(in_chans, widths[0], depths[0], norm_layer, act_layer)
    module.stages = nn.Sequential()
    module.feature_info = []
    stride = 2
    for i, (w, d) in enumerate(zip(widths[1:], depths[1:])):
        vit_stage = i >= 2
        module.stages.append(EfficientVitStage(
            widths[i], w, d, norm_layer, act_layer, expand_ratio, head_dim, vit_stage=vit_stage, eps=eps,
            quadratic=vit_stage and _resolve_quadratic(attn_impl, img_size, i, head_dim)))
        stride *= 2
        module.feature_info.append(dict(num_chs=w, reduction=stride, module=f"stages.{i}"))


# --------------------------------------------------------------------------------------------- heads

class ClassifierHead(nn.Module):
    """1x1 conv + BN + act -> global average pool -> Linear -> LayerNorm -> act -> Linear: (B, C, h, w) -> (B, K).

    ``classifier`` keeps timm's indices (0 Linear, 1 LayerNorm, 2 act, 3 dropout, 4 Linear).
    """

    def __init__(self, in_chs: int, widths: Sequence[int], num_classes: int = 1000, drop_rate: float = 0.0,
                 norm_layer=nn.BatchNorm2d, act_layer=nn.Hardswish):
        super().__init__()
        self.in_conv = ConvNormAct(in_chs, widths[0], 1, norm_layer=norm_layer, act_layer=act_layer)
        self.classifier = nn.Sequential(
            nn.Linear(widths[0], widths[1], bias=False),
            nn.LayerNorm(widths[1]),
            act_layer(),
            nn.Dropout(drop_rate),
            nn.Linear(widths[1], num_classes) if num_classes > 0 else nn.Identity(),
        )

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.in_conv(x), 1).flatten(1)
        return self.classifier[:4](x) if pre_logits else self.classifier(x)


class SegHead(nn.Module):
    """EfficientViT-Seg head: multi-level features summed at ``head_stride``, MBConv refinement, 1x1 classifier.

    feats: list ordered like ``in_chs`` (deepest first, as the original's fid_list
    ["stage4", "stage3", "stage2"]): (B, in_chs[i], H/strides[i], W/strides[i]) -> (B, K, H/head_stride, W/head_stride).
    upsample_mode: "bilinear" (default, what every runtime implements the same way) or "bicubic" (the
        original's choice; pick it to reproduce original checkpoints bit for bit).
    """

    def __init__(self, in_chs: Sequence[int], strides: Sequence[int], head_stride: int, head_width: int,
                 head_depth: int, expand_ratio: float, final_expand: float | None, num_classes: int,
                 norm_layer=nn.BatchNorm2d, act_layer=nn.Hardswish, upsample_mode: str = "bilinear"):
        super().__init__()
        if upsample_mode not in ("bilinear", "bicubic"):
            raise ValueError(f"upsample_mode must be 'bilinear' or 'bicubic', got {upsample_mode!r}")
        self.upsample_mode = upsample_mode
        self.factors = tuple(s // head_stride for s in strides)
        self.inputs = nn.ModuleList([ConvNormAct(c, head_width, 1, norm_layer=norm_layer, act_layer=None)
                                     for c in in_chs])
        self.middle = nn.Sequential(*[
            ResidualBlock(MBConv(head_width, head_width, expand_ratio=expand_ratio, norm_layer=norm_layer,
                                 act_layer=(act_layer, act_layer, None)))
            for _ in range(head_depth)])
        out_chs = head_width
        if final_expand is not None:
            out_chs = round(head_width * final_expand)
            self.final_expand = ConvNormAct(head_width, out_chs, 1, norm_layer=norm_layer, act_layer=act_layer)
        else:
            self.final_expand = nn.Identity()
        self.classifier = ConvNormAct(out_chs, num_classes, 1, bias=True, norm_layer=None, act_layer=None)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        x = None
        for op, factor, f in zip(self.inputs, self.factors, feats):
            f = op(f)
            if factor != 1:  # static per level, not a shape test
                f = F.interpolate(f, scale_factor=factor, mode=self.upsample_mode, align_corners=False)
            x = f if x is None else x + f
        return self.classifier(self.final_expand(self.middle(x)))


# --------------------------------------------------------------------------------------------- models

class EfficientVit(nn.Module):
    """EfficientViT-B classifier: (B, 3, H, W) -> (B, num_classes). H, W multiples of 32.

    img_size: (H, W) the model is built for; only used to resolve ``attn_impl="auto"``.
    attn_impl: "linear" (default, as timm), "quadratic", or "auto" (quadratic in the stages whose token count
        at ``img_size`` is <= head_dim, as the original decides at run time).
    """

    def __init__(self, in_chans: int = 3, widths: Sequence[int] = (), depths: Sequence[int] = (),
                 head_dim: int = 32, expand_ratio: float = 4, head_widths: Sequence[int] = (),
                 num_classes: int = 1000, drop_rate: float = 0.0, img_size: int | Sequence[int] = 224,
                 attn_impl: str = "linear", eps: float = 1e-5, norm_layer=nn.BatchNorm2d, act_layer=nn.Hardswish):
        super().__init__()
        self.num_classes = num_classes
        _build_trunk(self, in_chans, widths, depths, head_dim, expand_ratio, norm_layer, act_layer,
                     to_pair(img_size), attn_impl, eps)
        self.num_features = widths[-1]
        self.head = ClassifierHead(widths[-1], head_widths, num_classes, drop_rate, norm_layer, act_layer)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, widths[-1], H/32, W/32)."""
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> every stage's output, NCHW, in order of stride (the maps ``--features`` picks from)."""
        return stage_outputs(x, self.stem, self.stages)


class EfficientVitSeg(nn.Module):
    """EfficientViT-Seg: (B, 3, H, W) -> logits (B, num_classes, H/8, W/8). H, W multiples of 32.

    ``stem`` / ``stages`` are the classifier's backbone under the same names; ``head`` is ``SegHead`` fed
    by stages 3, 2, 1 (strides 32, 16, 8).
    """

    def __init__(self, in_chans: int = 3, widths: Sequence[int] = (), depths: Sequence[int] = (),
                 head_dim: int = 32, expand_ratio: float = 4, head_width: int = 32, head_depth: int = 1,
                 final_expand: float | None = 4, num_classes: int = 19, img_size: int | Sequence[int] = 512,
                 attn_impl: str = "linear", eps: float = 1e-5, upsample_mode: str = "bilinear",
                 norm_layer=nn.BatchNorm2d, act_layer=nn.Hardswish):
        super().__init__()
        self.num_classes = num_classes
        _build_trunk(self, in_chans, widths, depths, head_dim, expand_ratio, norm_layer, act_layer,
                     to_pair(img_size), attn_impl, eps)
        self.head_indices = (3, 2, 1)
        self.output_stride = 8
        self.head = SegHead(
            in_chs=[widths[i + 1] for i in self.head_indices],
            strides=[self.feature_info[i]["reduction"] for i in self.head_indices],
            head_stride=self.output_stride, head_width=head_width, head_depth=head_depth, expand_ratio=4,
            final_expand=final_expand, num_classes=num_classes, norm_layer=norm_layer, act_layer=act_layer,
            upsample_mode=upsample_mode)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> the four stage outputs, strides 4, 8, 16, 32."""
        return stage_outputs(x, self.stem, self.stages)

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_features(x)

    def forward_head(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.head([feats[i] for i in self.head_indices])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# --------------------------------------------------------------------------------------------- checkpoints

# original repo (mit-han-lab/efficientvit) -> zoo / timm names, applied in order, first match wins
_ORIGINAL_RULES = (
    (re.compile(r"^backbone\.input_stem\.op_list\.0\."), lambda m: "stem.in_conv."),
    (re.compile(r"^backbone\.input_stem\.op_list\.(\d+)\."), lambda m: f"stem.res{int(m[1]) - 1}."),
    (re.compile(r"^backbone\.stages\.(\d+)\.op_list\.(\d+)\."), lambda m: f"stages.{m[1]}.blocks.{m[2]}."),
    # classification ClsHead: [ConvLayer, pool, LinearLayer(+LN, act), LinearLayer]
    (re.compile(r"^head\.op_list\.0\."), lambda m: "head.in_conv."),
    (re.compile(r"^head\.op_list\.2\.linear\."), lambda m: "head.classifier.0."),
    (re.compile(r"^head\.op_list\.2\.norm\."), lambda m: "head.classifier.1."),
    (re.compile(r"^head\.op_list\.3\.linear\."), lambda m: "head.classifier.4."),
    # SegHead (a DAGBlock): input_ops[i] is a ConvLayer, or OpSequential([ConvLayer, UpSampleLayer])
    (re.compile(r"^head\.input_ops\.(\d+)\.(?:op_list\.0\.)?"), lambda m: f"head.inputs.{m[1]}."),
    (re.compile(r"^head\.middle\.op_list\.(\d+)\."), lambda m: f"head.middle.{m[1]}."),
)


def _is_cls_head_key(k: str) -> bool:
    return k.startswith(("head.in_conv.", "head.classifier.0.", "head.classifier.1.", "head.classifier.4."))


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """Convert an EfficientViT-B checkpoint to this file's keys.

    Accepted layouts:
    - timm ``efficientvit_b0..b3`` (``stem.in_conv.conv.weight``, ``stages.{i}.blocks.{j}...``,
      ``head.in_conv...``, ``head.classifier.{0,1,4}...``): identical to ours, passed through.
    - the original repo, classification (``efficientvit_cls_b*``) or segmentation (``efficientvit_seg_b*``):
        backbone.input_stem.op_list.0.*             -> stem.in_conv.*
        backbone.input_stem.op_list.{n}.*           -> stem.res{n-1}.*
        backbone.stages.{i}.op_list.{j}.*           -> stages.{i}.blocks.{j}.*   (block internals unchanged)
        head.op_list.{0 | 2.linear | 2.norm | 3.linear}.* -> head.{in_conv | classifier.0 | classifier.1 | classifier.4}.*
        head.input_ops.{i}[.op_list.0].*            -> head.inputs.{i}.*        (i: stage4, stage3, stage2)
        head.middle.op_list.{j}.*                   -> head.middle.{j}.*
        head.output_ops.0.op_list.{0, 1}.*          -> head.final_expand.*, head.classifier.*  (with final_expand)
        head.output_ops.0.op_list.0.*               -> head.classifier.*                       (without, e.g. ADE20K)
    Either may be wrapped in ``{"state_dict": ...}`` or ``{"model": ...}``, keys optionally ``module.``-prefixed.
    A classification checkpoint given to a segmentation model (or the reverse) keeps only the backbone:
    load it with ``strict=False`` to initialise the backbone.
    """
    for container in ("state_dict", "model"):  # training checkpoints wrap the weights
        if isinstance(state_dict.get(container), dict):
            state_dict = state_dict[container]
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}  # DistributedDataParallel
    has_final_expand = isinstance(getattr(getattr(model, "head", None), "final_expand", None), ConvNormAct)
    out = {}
    for k, v in state_dict.items():
        m = re.match(r"^head\.output_ops\.0\.op_list\.(\d+)\.", k)
        if m:
            idx = int(m[1])
            name = "head.final_expand." if has_final_expand and idx == 0 else "head.classifier."
            k = name + k[m.end():]
        else:
            for pattern, repl in _ORIGINAL_RULES:
                m = pattern.match(k)
                if m:
                    k = repl(m) + k[m.end():]
                    break
        out[k] = v
    is_seg_model = isinstance(model, EfficientVitSeg)
    if is_seg_model and any(_is_cls_head_key(k) for k in out):
        out = {k: v for k, v in out.items() if not k.startswith("head.")}
    elif not is_seg_model and any(k.startswith("head.inputs.") for k in out):
        out = {k: v for k, v in out.items() if not k.startswith("head.")}
    return out


# --------------------------------------------------------------------------------------------- factories

_B_ARCHS = {  # widths, depths, head_dim, classifier head widths (timm / original)
    "b0": dict(widths=(8, 16, 32, 64, 128), depths=(1, 2, 2, 2, 2), head_dim=16, head_widths=(1024, 1280)),
    "b1": dict(widths=(16, 32, 64, 128, 256), depths=(1, 2, 3, 3, 4), head_dim=16, head_widths=(1536, 1600)),
    "b2": dict(widths=(24, 48, 96, 192, 384), depths=(1, 3, 4, 4, 6), head_dim=32, head_widths=(2304, 2560)),
    "b3": dict(widths=(32, 64, 128, 256, 512), depths=(1, 4, 6, 6, 9), head_dim=32, head_widths=(2304, 2560)),
}


def _create_efficientvit(arch: str, seg: dict | None = None, **kwargs) -> nn.Module:
    if seg is None:
        return EfficientVit(**{**_B_ARCHS[arch], **kwargs})
    args = {k: v for k, v in _B_ARCHS[arch].items() if k != "head_widths"}
    return EfficientVitSeg(**{**args, **seg, **kwargs})


_cls_cfg = partial(ModelCfg, family="efficientvit", task="classification", input_size=(3, 224, 224),
                   num_classes=1000, labels="imagenet", interpolation="bicubic", size_divisor=32)
_seg_cfg = partial(ModelCfg, family="efficientvit", task="segmentation", input_size=(3, 512, 512),
                   output_stride=8, size_divisor=32)


@register_model(_cls_cfg(reference={"timm": "efficientvit_b0"},
                         description="EfficientViT-B0 (MIT), ReLU linear attention, ImageNet-1k, 3.4M params"))
def efficientvit_b0(**kwargs) -> EfficientVit:
    return _create_efficientvit("b0", **kwargs)


@register_model(_cls_cfg(reference={"timm": "efficientvit_b1"},
                         description="EfficientViT-B1 (MIT), ReLU linear attention, ImageNet-1k, 9.1M params"))
def efficientvit_b1(**kwargs) -> EfficientVit:
    return _create_efficientvit("b1", **kwargs)


@register_model(_cls_cfg(reference={"timm": "efficientvit_b2"},
                         description="EfficientViT-B2 (MIT), ReLU linear attention, ImageNet-1k, 24.3M params"))
def efficientvit_b2(**kwargs) -> EfficientVit:
    return _create_efficientvit("b2", **kwargs)


@register_model(_cls_cfg(reference={"timm": "efficientvit_b3"},
                         description="EfficientViT-B3 (MIT), ReLU linear attention, ImageNet-1k, 48.6M params"))
def efficientvit_b3(**kwargs) -> EfficientVit:
    return _create_efficientvit("b3", **kwargs)


@register_model(_seg_cfg(num_classes=19, labels="cityscapes",
                         reference={"mit-han-lab/efficientvit": "efficientvit_seg_b0 (cityscapes)",
                                    "timm_backbone": "efficientvit_b0"},
                         description="EfficientViT-Seg-B0, Cityscapes 19 classes, logits at stride 8 (built at 512x512; "
                                     "Cityscapes native 1024x2048)"))
def efficientvit_b0_seg(**kwargs) -> EfficientVitSeg:
    return _create_efficientvit("b0", seg=dict(head_width=32, head_depth=1, final_expand=4, num_classes=19),
                                **kwargs)


@register_model(_seg_cfg(num_classes=19, labels="cityscapes",
                         reference={"mit-han-lab/efficientvit": "efficientvit_seg_b1 (cityscapes)",
                                    "timm_backbone": "efficientvit_b1"},
                         description="EfficientViT-Seg-B1, Cityscapes 19 classes, logits at stride 8 (built at 512x512; "
                                     "Cityscapes native 1024x2048)"))
def efficientvit_b1_seg(**kwargs) -> EfficientVitSeg:
    return _create_efficientvit("b1", seg=dict(head_width=64, head_depth=3, final_expand=4, num_classes=19),
                                **kwargs)


@register_model(_seg_cfg(num_classes=150, labels="ade20k",
                         reference={"mit-han-lab/efficientvit": "efficientvit_seg_b1 (ade20k)",
                                    "timm_backbone": "efficientvit_b1"},
                         description="EfficientViT-Seg-B1, ADE20K 150 classes, logits at stride 8, 512x512"))
def efficientvit_b1_seg_ade(**kwargs) -> EfficientVitSeg:
    return _create_efficientvit("b1", seg=dict(head_width=64, head_depth=3, final_expand=None, num_classes=150),
                                **kwargs)
