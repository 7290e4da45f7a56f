"""EfficientFormerV2: mobile-sized vision transformer (Li et al., Snap, 2022, https://arxiv.org/abs/2212.08059).

Conv stages (depthwise-conv MLPs) followed by attention in the last two stages:

* ``Attention2d`` in stage 3 (at half that stage's resolution: stride-2 dw conv in, bilinear
  upsample out) and stage 4: multi-head attention with a learned bias per (|dy|, |dx|) offset and
  "talking heads" 1x1 convs that mix heads before and after the softmax;
* ``Attention2dDownsample`` between stages 3 and 4: the query comes from a stride-2 local+pooled
  branch, keys/values from the full-resolution map.

The attention-bias tables are resolution dependent: ``N = h * w`` tokens, one learned value per
head per offset. They are built for the ``img_size`` the model is constructed with (the model only
runs at that size). In the train graph the (heads, Nq, Nkv) bias is gathered from the learned
table on every forward (so it always follows loaded or updated weights: there is no eval-time cache
to go stale); ``reparameterize()`` gathers it once into a constant buffer ``attention_bias`` and
drops the table and its index, so the exported graph holds a plain constant add.

Module names mirror timm's ``timm/models/efficientformer_v2.py`` (``efficientformerv2_s1``).
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from edgekit.models._layers import fuse_conv_bn, stage_outputs
from edgekit.models._registry import ModelCfg, register_model

__all__ = ["EfficientFormerV2", "checkpoint_filter_fn"]

# Per-stage widths, depths and MLP expansion ratios (per block) of the S1 variant.
_S1 = dict(
    embed_dims=(32, 48, 120, 224),
    depths=(3, 3, 9, 6),
    mlp_ratios=((4, 4, 4), (4, 4, 4), (4, 4, 3, 3, 3, 3, 4, 4, 4), (4, 4, 3, 3, 4, 4)),
    num_vit=2,
)


# ---------------------------------------------------------------------------------------------
# helpers


class ConvBn(nn.Module):
    """Conv2d (with bias, as timm) + BatchNorm2d, keys ``conv`` / ``bn``, (B, in, H, W) -> (B, out, H/s, W/s).

    ``reparameterize()`` folds the BN into the conv.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 act_layer: type[nn.Module] | None = None):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=True)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = act_layer() if act_layer is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def reparameterize(self) -> None:
        if not isinstance(self.bn, nn.Identity):
            self.conv, self.bn = fuse_conv_bn(self.conv, self.bn), nn.Identity()


class LayerScale2d(nn.Module):
    """Per-channel residual scale, gamma (C,) as timm's ``LayerScale2d``.

    Kept as a separate Mul in deploy mode: trained gammas can be tiny, and weight * gamma would land
    in fp16's subnormal range; runtimes fuse the Mul into the conv themselves.
    """

    def __init__(self, dim: int, init_value: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1)


def _grid(rows: range, cols: range) -> torch.Tensor:
    """(2, len(rows) * len(cols)) row/col coordinates, row-major like a flattened NCHW map."""
    r, c = torch.meshgrid(torch.tensor(list(rows)), torch.tensor(list(cols)), indexing="ij")
    return torch.stack([r.flatten(), c.flatten()])


def _bias_index(q_pos: torch.Tensor, k_pos: torch.Tensor, cols: int) -> torch.Tensor:
    """(Nq, Nkv) index into a per-head table laid out as (|dy|, |dx|) on a grid ``cols`` wide."""
    rel = (q_pos[:, :, None] - k_pos[:, None, :]).abs()
    return rel[0] * cols + rel[1]


class _BiasTable(nn.Module):
    """Learned attention bias per head and (|dy|, |dx|) offset, for one fixed token grid.

    Train graph: ``attention_biases`` (heads, rows * cols) parameter + ``attention_bias_idxs``
    (Nq, Nkv) index, gathered on every call. ``reparameterize()`` stores the gathered (1, heads,
    Nq, Nkv) tensor as the persistent buffer ``attention_bias`` and removes the table and index.
    """

    def _init_bias(self, num_heads: int, grid: tuple[int, int], idxs: torch.Tensor) -> None:
        self.bias_grid = grid
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, grid[0] * grid[1]))
        self.register_buffer("attention_bias_idxs", idxs, persistent=False)
        self.register_buffer("attention_bias", None)  # filled by reparameterize()

    def _bias(self) -> torch.Tensor:
        """Additive attention bias (1, heads, Nq, Nkv)."""
        if self.attention_bias is not None:
            return self.attention_bias
        return self.attention_biases[:, self.attention_bias_idxs].unsqueeze(0)

    @torch.no_grad()
    def _freeze_bias(self) -> None:
        if self.attention_bias is not None:
            return
        bias = self._bias().detach().clone()
        del self.attention_biases, self.attention_bias_idxs
        self.attention_bias = bias  # a registered (persistent) buffer from here on


# ---------------------------------------------------------------------------------------------
# blocks


class Attention2d(_BiasTable):
    """Talking-heads attention with a learned position bias, (B, C, H, W) -> (B, C, H, W).

    With ``stride`` the attention runs on a stride-2 depthwise-conv map and is upsampled back
    bilinearly to (H, W). ``resolution`` is the (H, W) the block is built for; the bias table and
    the output reshape are fixed to it.
    """

    # _attention here is not a plain softmax(qk^T * scale + bias) v core: see its docstring.
    talking_heads = True

    def __init__(self, dim: int, key_dim: int = 32, num_heads: int = 8, attn_ratio: float = 4,
                 resolution: tuple[int, int] = (7, 7), act_layer: type[nn.Module] = nn.GELU,
                 stride: int | None = None):
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.scale = key_dim ** -0.5
        self.in_resolution = tuple(resolution)
        if stride is not None:
            self.resolution = tuple(math.ceil(r / stride) for r in resolution)
            self.stride_conv = ConvBn(dim, dim, 3, stride, groups=dim)
        else:
            self.resolution = tuple(resolution)
            self.stride_conv = None
        self.N = self.resolution[0] * self.resolution[1]
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        kh = key_dim * num_heads

        self.q = ConvBn(dim, kh)
        self.k = ConvBn(dim, kh)
        self.v = ConvBn(dim, self.dh)
        self.v_local = ConvBn(self.dh, self.dh, 3, groups=self.dh)
        self.talking_head1 = nn.Conv2d(num_heads, num_heads, 1)
        self.talking_head2 = nn.Conv2d(num_heads, num_heads, 1)
        self.act = act_layer()
        self.proj = ConvBn(self.dh, dim)
        pos = _grid(range(self.resolution[0]), range(self.resolution[1]))
        self._init_bias(num_heads, self.resolution, _bias_index(pos, pos, self.resolution[1]))

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
        """Talking-heads attention core, q/k (B, h, N, key_dim), v (B, h, N, d) -> (B, h, N, d).

        logits = q k^T * scale + bias -> talking_head1 -> softmax -> talking_head2 -> @ v.

        The two talking-heads 1x1 convs mix *heads*: the first mixes the pre-softmax logits of all
        heads, the second the post-softmax probabilities. Neither commutes with the softmax or with
        the value product, so they cannot stay outside a plain ``softmax(qk^T*scale + bias) v``
        core. (An exact rewrite into a plain core exists: fold talking_head1 into a query of
        head dim heads*key_dim and the bias, and talking_head2 into values of all heads,
        heads*d wide; that multiplies the core's matmul work by the head count, 8.) So this core
        takes the logits path differently, and ``talking_heads = True`` marks it for the rewrite
        system: a fused plain-attention plugin must not replace it.
        """
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if bias is not None:
            attn = attn + bias
        attn = self.talking_head1(attn).softmax(dim=-1)
        return self.talking_head2(attn) @ v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        if self.stride_conv is not None:
            x = self.stride_conv(x)
        q = self.q(x).reshape(B, self.num_heads, self.key_dim, self.N).transpose(-2, -1)
        k = self.k(x).reshape(B, self.num_heads, self.key_dim, self.N).transpose(-2, -1)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.reshape(B, self.num_heads, self.d, self.N).transpose(-2, -1)
        x = self._attention(q, k, v, self._bias())
        x = x.transpose(-2, -1).reshape(B, self.dh, self.resolution[0], self.resolution[1]) + v_local
        if self.stride_conv is not None:
            # explicit output size: the map is exactly (H, W) again, and the Resize is a constant
            x = F.interpolate(x, size=self.in_resolution, mode="bilinear", align_corners=False)
        return self.proj(self.act(x))

    def reparameterize(self) -> None:
        self._freeze_bias()


class LocalGlobalQuery(nn.Module):
    """Stride-2 query: depthwise 3x3 conv + strided subsample, then 1x1 ConvBn, (B, C, H, W) -> (B, C', H/2, W/2)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.pool = nn.AvgPool2d(1, 2, 0)
        self.local = nn.Conv2d(in_dim, in_dim, 3, 2, 1, groups=in_dim)
        self.proj = ConvBn(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.local(x) + self.pool(x))


class Attention2dDownsample(_BiasTable):
    """Attention that halves the resolution, (B, C, H, W) -> (B, C_out, ceil(H/2), ceil(W/2)).

    Queries on the stride-2 grid, keys/values on the full grid; bias indexed by the offset between
    a query's position (on the full grid) and each key's.
    """

    def __init__(self, dim: int, key_dim: int = 16, num_heads: int = 8, attn_ratio: float = 4,
                 resolution: tuple[int, int] = (7, 7), out_dim: int | None = None,
                 act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.scale = key_dim ** -0.5
        self.resolution = tuple(resolution)
        self.resolution2 = tuple(math.ceil(r / 2) for r in resolution)
        self.N = self.resolution[0] * self.resolution[1]
        self.N2 = self.resolution2[0] * self.resolution2[1]
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.out_dim = out_dim or dim
        kh = key_dim * num_heads

        self.q = LocalGlobalQuery(dim, kh)
        self.k = ConvBn(dim, kh)
        self.v = ConvBn(dim, self.dh)
        self.v_local = ConvBn(self.dh, self.dh, 3, 2, groups=self.dh)
        self.act = act_layer()
        self.proj = ConvBn(self.dh, self.out_dim)
        k_pos = _grid(range(self.resolution[0]), range(self.resolution[1]))
        q_pos = _grid(range(0, self.resolution[0], 2), range(0, self.resolution[1], 2))
        self._init_bias(num_heads, self.resolution, _bias_index(q_pos, k_pos, self.resolution[1]))

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
        """softmax(q k^T * scale + bias) v; q (B, h, Nq, d), k/v (B, h, Nkv, d) -> (B, h, Nq, d)."""
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if bias is not None:
            attn = attn + bias
        return attn.softmax(dim=-1) @ v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        q = self.q(x).reshape(B, self.num_heads, self.key_dim, self.N2).transpose(-2, -1)
        k = self.k(x).reshape(B, self.num_heads, self.key_dim, self.N).transpose(-2, -1)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.reshape(B, self.num_heads, self.d, self.N).transpose(-2, -1)
        x = self._attention(q, k, v, self._bias())
        x = x.transpose(-2, -1).reshape(B, self.dh, self.resolution2[0], self.resolution2[1]) + v_local
        return self.proj(self.act(x))

    def reparameterize(self) -> None:
        self._freeze_bias()


class Downsample(nn.Module):
    """Stride-2 3x3 ConvBn, plus a parallel downsampling attention in the last stage."""

    def __init__(self, in_chs: int, out_chs: int, resolution: tuple[int, int], use_attn: bool = False,
                 act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.conv = ConvBn(in_chs, out_chs, 3, 2)
        self.attn = Attention2dDownsample(in_chs, resolution=resolution, out_dim=out_chs, act_layer=act_layer) \
            if use_attn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out + self.attn(x) if self.attn is not None else out


class ConvMlpWithNorm(nn.Module):
    """1x1 ConvBn-act -> 3x3 dw ConvBn-act -> 1x1 ConvBn, (B, C, H, W) -> same."""

    def __init__(self, in_features: int, hidden_features: int, act_layer: type[nn.Module] = nn.GELU,
                 drop: float = 0.0):
        super().__init__()
        self.fc1 = ConvBn(in_features, hidden_features, act_layer=act_layer)
        self.mid = ConvBn(hidden_features, hidden_features, 3, groups=hidden_features, act_layer=act_layer)
        self.drop1 = nn.Dropout(drop)
        self.fc2 = ConvBn(hidden_features, in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.mid(self.fc1(x)))))


class EfficientFormerV2Block(nn.Module):
    """(x + ls1 * attention(x)) -> x + ls2 * mlp(x), (B, C, H, W) -> same."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, act_layer: type[nn.Module] = nn.GELU,
                 proj_drop: float = 0.0, layer_scale_init_value: float = 1e-5,
                 resolution: tuple[int, int] = (7, 7), stride: int | None = None, use_attn: bool = True):
        super().__init__()
        if use_attn:
            self.token_mixer = Attention2d(dim, resolution=resolution, act_layer=act_layer, stride=stride)
            self.ls1 = LayerScale2d(dim, layer_scale_init_value)
        else:
            self.token_mixer = self.ls1 = None
        self.mlp = ConvMlpWithNorm(dim, int(dim * mlp_ratio), act_layer, proj_drop)
        self.ls2 = LayerScale2d(dim, layer_scale_init_value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.token_mixer is not None:
            x = x + self.ls1(self.token_mixer(x))
        return x + self.ls2(self.mlp(x))


class Stem4(nn.Sequential):
    """Two stride-2 3x3 ConvBn-act, (B, 3, H, W) -> (B, C, H/4, W/4)."""

    def __init__(self, in_chs: int, out_chs: int, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.conv1 = ConvBn(in_chs, out_chs // 2, 3, 2, act_layer=act_layer)
        self.conv2 = ConvBn(out_chs // 2, out_chs, 3, 2, act_layer=act_layer)


# ---------------------------------------------------------------------------------------------
# stages


class EfficientFormerV2Stage(nn.Module):
    """(Downsample) -> ``depth`` blocks; the last ``num_vit`` blocks attend when ``block_use_attn``."""

    def __init__(self, dim: int, dim_out: int, depth: int, resolution: tuple[int, int], downsample: bool = True,
                 block_stride: int | None = None, downsample_use_attn: bool = False, block_use_attn: bool = False,
                 num_vit: int = 1, mlp_ratio: tuple[float, ...] = (4.0,), proj_drop: float = 0.0,
                 layer_scale_init_value: float = 1e-5, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        if downsample:
            self.downsample = Downsample(dim, dim_out, resolution, downsample_use_attn, act_layer)
            resolution = tuple(math.ceil(r / 2) for r in resolution)
        else:
            assert dim == dim_out, "a stage without downsample keeps its width"
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[
            EfficientFormerV2Block(dim_out, mlp_ratio[i], act_layer, proj_drop, layer_scale_init_value, resolution,
                                   block_stride, use_attn=block_use_attn and i >= depth - num_vit)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


# ---------------------------------------------------------------------------------------------
# model


class EfficientFormerV2(nn.Module):
    """EfficientFormerV2 classifier, (B, 3, H, W) -> (B, num_classes) at the (H, W) it was built for.

    With distillation (timm's default) there are two heads and the output is their mean, which is
    what timm returns in eval. ``reparameterize()`` folds the final BatchNorm into both heads and
    merges them into one Linear.
    """

    def __init__(self, depths: tuple[int, ...], embed_dims: tuple[int, ...],
                 mlp_ratios: tuple[tuple[float, ...], ...], num_vit: int = 0, num_classes: int = 1000,
                 in_chans: int = 3, img_size: tuple[int, int] = (224, 224), distillation: bool = True,
                 drop_rate: float = 0.0, proj_drop_rate: float = 0.0, layer_scale_init_value: float = 1e-5,
                 act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        self.num_classes = num_classes
        self.img_size = tuple(img_size)
        self.stem = Stem4(in_chans, embed_dims[0], act_layer)
        stages, prev_dim, stride = [], embed_dims[0], 4
        for i, depth in enumerate(depths):
            resolution = tuple(math.ceil(s / stride) for s in self.img_size)
            stages.append(EfficientFormerV2Stage(
                prev_dim, embed_dims[i], depth, resolution, downsample=i > 0, block_stride=2 if i == 2 else None,
                downsample_use_attn=i >= 3, block_use_attn=i >= 2, num_vit=num_vit, mlp_ratio=mlp_ratios[i],
                proj_drop=proj_drop_rate, layer_scale_init_value=layer_scale_init_value, act_layer=act_layer,
            ))
            stride *= 2 if i > 0 else 1
            prev_dim = embed_dims[i]
        self.stages = nn.Sequential(*stages)
        self.num_features = embed_dims[-1]
        self.norm = nn.BatchNorm2d(embed_dims[-1])
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.head_dist = nn.Linear(embed_dims[-1], num_classes) if distillation and num_classes > 0 else None
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, H/32, W/32)."""
        return self.norm(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, C, h, w) -> (B, num_classes), or pooled (B, C) with pre_logits."""
        x = self.head_drop(x.mean((2, 3)))
        if pre_logits:
            return x
        if self.head_dist is None:
            return self.head(x)
        return (self.head(x) + self.head_dist(x)) / 2

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> every stage's output, NCHW, in order of stride (the maps ``--features`` picks from)."""
        return stage_outputs(x, self.stem, self.stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold ``norm`` into the head(s) (BN then mean-pool then Linear is Linear), merge the two heads."""
        if isinstance(self.norm, nn.Identity) or not isinstance(self.head, nn.Linear):
            return
        bn = self.norm
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        shift = bn.bias - bn.running_mean * scale
        heads = [self.head] + ([self.head_dist] if self.head_dist is not None else [])
        weight = sum(h.weight for h in heads) / len(heads)
        bias = sum(h.bias for h in heads) / len(heads)
        fused = nn.Linear(self.num_features, weight.shape[0]).to(weight)
        fused.weight.copy_(weight * scale[None, :])
        fused.bias.copy_(weight @ shift + bias)
        self.head, self.head_dist, self.norm = fused, None, nn.Identity()


# ---------------------------------------------------------------------------------------------
# checkpoints and factories


def _resize_bias_table(table: torch.Tensor, src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    """(heads, src_h * src_w) -> (heads, dst_h * dst_w), indexed by (|dy|, |dx|).

    Offsets present in both grids keep their learned values exactly; offsets only the larger grid
    has repeat the largest learned offset (edge padding). Fine-tune afterwards for best accuracy.
    """
    t = table.reshape(1, table.shape[0], *src)[:, :, :dst[0], :dst[1]]
    pad_h, pad_w = dst[0] - t.shape[2], dst[1] - t.shape[3]
    if pad_h or pad_w:
        t = F.pad(t, (0, pad_w, 0, pad_h), mode="replicate")
    return t.reshape(table.shape[0], dst[0] * dst[1])


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """timm ``efficientformerv2_*`` state dict -> zoo keys, for the resolution ``model`` was built for.

    The zoo mirrors timm's names (``stem.conv1.conv.weight``, ``stages.2.blocks.7.token_mixer.
    attention_biases``, ``stages.3.downsample.attn.q.local.weight``, ``norm.*``, ``head.*``,
    ``head_dist.*``). This unwraps a ``model`` / ``state_dict`` container and a ``module.``
    prefix, drops ``attention_bias_idxs`` (recomputed here; the original snap-research checkpoints
    stored it), and, when ``model`` was built for another resolution than the checkpoint (timm's
    weights are for 224: 7x7 attention grids, 14x14 in the downsampling attention), crops or
    edge-pads each ``attention_biases`` table to the model's grid (square source grids only).
    Train-graph checkpoints only: load, then reparameterize.
    """
    for container in ("model", "state_dict"):
        if container in state_dict and isinstance(state_dict[container], dict):
            state_dict = state_dict[container]
    modules = dict(model.named_modules())
    out = {}
    for k, v in state_dict.items():
        k = k.removeprefix("module.")
        if k.endswith("attention_bias_idxs"):
            continue
        if k.endswith("attention_biases"):
            dst = modules[k.rsplit(".", 1)[0]].bias_grid
            if v.shape[1] != dst[0] * dst[1]:
                side = math.isqrt(v.shape[1])
                if side * side != v.shape[1]:
                    raise ValueError(f"{k}: cannot infer the grid of a {tuple(v.shape)} bias table")
                v = _resize_bias_table(v, (side, side), dst)
        out[k] = v
    return out


def _create_efficientformerv2(img_size: tuple[int, int] = (224, 224), **kwargs) -> EfficientFormerV2:
    return EfficientFormerV2(img_size=tuple(img_size), **kwargs)


@register_model(ModelCfg(
    family="efficientformerv2", input_size=(3, 224, 224), interpolation="bicubic", size_divisor=32,
    reference={"timm": "efficientformerv2_s1"},
    description="EfficientFormerV2-S1: mobile ViT, talking-heads attention with fixed-resolution bias tables",
))
def efficientformerv2_s1(**kwargs) -> EfficientFormerV2:
    return _create_efficientformerv2(**dict(_S1, **kwargs))
