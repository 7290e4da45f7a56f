"""Swin Transformer (Swin-T) with shifted-window attention, built for export.

Paper: `Swin Transformer: Hierarchical Vision Transformer using Shifted Windows`,
https://arxiv.org/abs/2103.14030. Key layout follows timm's ``swin_tiny_patch4_window7_224``
(timm/models/swin_transformer.py) so its checkpoints load through :func:`checkpoint_filter_fn`.

What differs from the reference, and why:

* Everything that depends on the resolution is decided at construction from ``img_size``: per-stage
  window size (clamped to the feature size, as the reference does), shift, static pad amounts, the
  shift mask. The forward pass has no branches on tensor shapes, so tracing freezes nothing by
  accident; a model is built for one input size (like timm's default ``strict_img_size``).
* ``dynamic_size=True`` builds one model for a range of sizes (edgekit's shape envelopes,
  ``--shapes`` / ``--dynamic-hw``): pads, the shift mask and the per-axis shift are computed in the
  forward pass from the input's size, so an export with symbolic height and width computes them in
  the graph. The window is not clamped: every stage grid must be at least one window wide (input
  >= 32 x window), where it computes what the model built for that size computes. The reference
  drops the shift on an axis whose grid is exactly one window; that choice depends on the size, so
  here it is data (a 0/1 gate from the grid's size), and the cyclic shift is a gather.
* Window partition / reverse and patch merging use tensors of rank <= 4 (the reference uses rank-6
  views; CoreML allows rank <= 5).
* Relative position bias and shift mask are added into ONE additive tensor of shape
  (num_windows or 1, heads, N, N). In train mode it is gathered from the learnable table at every
  forward (so it follows loaded weights); ``reparameterize()`` freezes it into a buffer and drops
  the table (deploy mode), so it exports as one constant.
* The attention core lives in ``WindowAttention._attention`` so edgekit's rewrites can swap it for
  the fused ``edgekit::WindowAttention`` op.

The segmentation variant puts the light FPN decoder of ``models/_heads.py`` on the four stage
outputs (strides 4, 8, 16, 32) and uses window 8: at 512x512 the stage grids are 128, 64, 32, 16,
all multiples of 8, so no padding is needed (window 7 would pad 16 -> 21 at the last stage, ~70 %
wasted tokens, plus Pad/Slice nodes). Sizes that are not multiples of 256 still work through
static pads computed at construction.
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from edgekit.models._heads import FPNHead
from edgekit.models._layers import DropPath, to_pair
from edgekit.models._registry import ModelCfg, register_model

__all__ = ["SwinTransformer", "SwinTransformerSeg", "WindowAttention", "checkpoint_filter_fn"]

_MASK_VALUE = -100.0  # as the reference; finite, so it survives fp16 (exp(-100) is 0 after softmax anyway)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def window_partition(x: torch.Tensor, window_size: tuple[int, int], feat_size: tuple[int, int],
                     dim: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * num_windows, wh * ww, C), windows ordered (batch, row, column).

    Rank-4 throughout: the rows of a window are split off H, the columns stay fused with C in the
    last axis, so one transpose of two middle axes groups each window's rows together. Sizes are
    passed as Python ints (not read from ``x.shape``) so the export has constant Reshape targets.
    """
    wh, ww = window_size
    x = x.reshape(-1, wh, feat_size[1] // ww, ww * dim)  # (B*H/wh, wh, W/ww, ww*C)
    x = x.transpose(1, 2)  # (B*H/wh, W/ww, wh, ww*C)
    return x.reshape(-1, wh * ww, dim)


def window_reverse(windows: torch.Tensor, window_size: tuple[int, int], feat_size: tuple[int, int],
                   dim: int) -> torch.Tensor:
    """(B * num_windows, wh * ww, C) -> (B, H, W, C); inverse of :func:`window_partition`."""
    H, W = feat_size
    wh, ww = window_size
    x = windows.reshape(-1, W // ww, wh, ww * dim)  # (B*H/wh, W/ww, wh, ww*C)
    x = x.transpose(1, 2)  # (B*H/wh, wh, W/ww, ww*C)
    return x.reshape(-1, H, W, dim)


def relative_position_index(window_size: tuple[int, int]) -> torch.Tensor:
    """(N, N) long index into the ((2wh-1) * (2ww-1), heads) bias table, N = wh * ww."""
    wh, ww = window_size
    rows, cols = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    d_row = rows[:, None] - rows[None, :] + wh - 1  # 0 .. 2wh-2
    d_col = cols[:, None] - cols[None, :] + ww - 1
    return d_row * (2 * ww - 1) + d_col


def shift_window_mask(feat_size: tuple[int, int], window_size: tuple[int, int],
                      shift_size: tuple[int, int]) -> torch.Tensor:
    """Additive mask (num_windows, 1, N, N) for shifted windows on a (padded) feature grid.

    After the cyclic shift, a window at the bottom/right edge holds tokens from up to three
    different image regions per axis; tokens may only attend within their own region.
    """
    H, W = feat_size
    region = torch.zeros(1, H, W, 1)
    label = 0
    for rows in _shift_slices(window_size[0], shift_size[0]):
        for cols in _shift_slices(window_size[1], shift_size[1]):
            region[:, rows, cols, :] = label
            label += 1
    ids = window_partition(region, window_size, feat_size, 1).squeeze(-1)  # (nW, N)
    mask = (ids[:, None, :] != ids[:, :, None]).float() * _MASK_VALUE  # (nW, N, N)
    return mask.unsqueeze(1)


def shift_mask_for(padded: tuple, window_size: tuple[int, int], shift: tuple, device) -> torch.Tensor:
    """:func:`shift_window_mask` computed from a (possibly symbolic) padded size: (nW, 1, N, N). ``shift`` holds
    each axis's shift as a 1-element long tensor (0 where the reference drops it), so no branch tests a size."""
    labels = []
    for size, window, s in zip(padded, window_size, shift):
        pos = torch.arange(size, device=device)
        # the three regions of _shift_slices: [0, size - window), [size - window, size - s), [size - s, size);
        # with s == 0 the reference makes the whole axis one region, here 0 * (...)
        labels.append(((pos >= size - window).long() + (pos >= size - s).long()) * (s > 0).long())
    region = (labels[0][:, None] * 3 + labels[1][None, :]).to(torch.float32)[None, :, :, None]
    ids = window_partition(region, window_size, padded, 1).squeeze(-1)  # (nW, N)
    return ((ids[:, None, :] != ids[:, :, None]).float() * _MASK_VALUE).unsqueeze(1)


def _shift_slices(window: int, shift: int) -> tuple[slice, slice, slice]:
    # same regions as the reference; with shift == 0 the last slice covers everything (one region)
    return slice(0, -window), slice(-window, -shift), slice(-shift, None)


class Mlp(nn.Module):
    """Linear -> GELU -> Linear on the last axis; (..., C) -> (..., C)."""

    def __init__(self, in_features: int, hidden_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


# ---------------------------------------------------------------------------------------------
# blocks
# ---------------------------------------------------------------------------------------------
class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with relative position bias (and shift mask).

    Input (B * num_windows, N, C) with N = wh * ww; output the same shape.

    The additive bias handed to ``_attention`` has shape (num_windows, heads, N, N) for a shifted
    block (relative position bias + shift mask, pre-added) or (1, heads, N, N) otherwise.
    Train mode gathers it from ``relative_position_bias_table`` each forward; after
    ``reparameterize()`` it is the constant buffer ``attn_bias`` and the table is gone, so a
    deploy-mode model cannot silently keep a bias that no longer matches loaded weights.
    """

    def __init__(self, dim: int, num_heads: int, window_size: tuple[int, int],
                 shift_mask: torch.Tensor | None = None, qkv_bias: bool = True):
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.window_area = window_size[0] * window_size[1]
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.deploy = False
        wh, ww = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.register_buffer("shift_mask", shift_mask, persistent=False)  # (nW, 1, N, N) or None
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def attention_bias(self) -> torch.Tensor:
        """(num_windows or 1, heads, N, N): relative position bias (+ shift mask)."""
        if self.deploy:
            return self.attn_bias
        n = self.window_area
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]  # (N*N, heads)
        bias = bias.reshape(n, n, self.num_heads).permute(2, 0, 1).unsqueeze(0)  # (1, heads, N, N)
        if self.shift_mask is not None:
            bias = bias + self.shift_mask
        return bias

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax attention core: q, k, v (B * nW, heads, N, d) -> (B * nW, heads, N, d).

        ``bias`` is (nW or 1, heads, N, N), one slice per window position. The batch axis of the
        scores is (batch, window), window fastest, so the per-window bias is added after folding the
        window axis into the head axis: (B, nW * heads, N, N) + (1, nW * heads, N, N). This keeps
        every tensor at rank 4 (a (B, nW, heads, N, N) view would be rank 5).
        """
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if bias is not None:
            n_win, heads, nq, nk = bias.shape
            attn = attn.reshape(-1, n_win * heads, nq, nk) + bias.reshape(1, n_win * heads, nq, nk)
            attn = attn.reshape(-1, heads, nq, nk)
        attn = attn.softmax(dim=-1)
        return attn @ v

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask``: a shift mask computed in the forward pass (dynamic-size models), added to the bias."""
        n, h, d = self.window_area, self.num_heads, self.head_dim  # static: no Shape ops in the export
        # explicit split sizes: chunk() would export Shape/Div arithmetic to compute them
        q, k, v = self.qkv(x).split([self.dim] * 3, dim=-1)  # each (B*nW, N, C), C laid out (head, d)
        q = q.reshape(-1, n, h, d).transpose(1, 2)
        k = k.reshape(-1, n, h, d).transpose(1, 2)
        v = v.reshape(-1, n, h, d).transpose(1, 2)
        bias = self.attention_bias()
        x = self._attention(q, k, v, bias if mask is None else bias + mask)
        x = x.transpose(1, 2).reshape(-1, n, self.dim)
        return self.proj(x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Freeze table gather + shift mask into the constant buffer ``attn_bias`` (deploy mode)."""
        if self.deploy:
            return
        bias = self.attention_bias().detach().clone()
        del self.relative_position_bias_table
        del self.relative_position_index
        del self.shift_mask
        self.register_buffer("attn_bias", bias)
        self.deploy = True


class SwinTransformerBlock(nn.Module):
    """(Shifted-)window attention + MLP, pre-norm; (B, H, W, C) -> (B, H, W, C).

    ``feat_size`` is the (H, W) this block will see; the window is clamped to it and the shift
    dropped where the window already covers the axis (as the reference does), and pads to a
    multiple of the window are computed here, once.
    """

    def __init__(self, dim: int, feat_size: tuple[int, int] | None, num_heads: int, window_size: tuple[int, int],
                 shift: bool = False, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path: float = 0.0):
        super().__init__()
        self.dim = dim
        self.feat_size = feat_size
        mask = None
        if feat_size is None:  # dynamic size: the window as given, the shift gated per forward (module doc)
            self.window_size = tuple(window_size)
            self.shift_size = tuple(w // 2 for w in window_size) if shift else (0, 0)
            self.pad, self.padded_size = None, None
        else:
            self.window_size = tuple(min(f, w) for f, w in zip(feat_size, window_size))
            self.shift_size = tuple(w // 2 if shift and f > w else 0 for f, w in zip(feat_size, self.window_size))
            self.pad = tuple((-f) % w for f, w in zip(feat_size, self.window_size))  # bottom, right
            self.padded_size = tuple(f + p for f, p in zip(feat_size, self.pad))
            if any(self.shift_size):
                mask = shift_window_mask(self.padded_size, self.window_size, self.shift_size)

        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, self.window_size, shift_mask=mask, qkv_bias=qkv_bias)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path2 = DropPath(drop_path)

    def _window_attn_dynamic(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`_window_attn` with every size-dependent amount computed from ``x`` (a symbolic size exports as
        graph arithmetic); no Python branch tests a size."""
        H, W = x.shape[1], x.shape[2]
        (wh, ww), dev = self.window_size, x.device
        rows, cols = torch.arange(H, device=dev), torch.arange(W, device=dev)
        shifted = any(self.shift_size)
        if shifted:
            # the reference shifts an axis only where its grid is wider than the window: H - 1 >= wh
            sh = (rows[-1:] >= wh).long() * self.shift_size[0]
            sw = (cols[-1:] >= ww).long() * self.shift_size[1]
            x = x.index_select(1, (rows + sh) % H).index_select(2, (cols + sw) % W)  # roll by -shift
        ph, pw = (wh - H % wh) % wh, (ww - W % ww) % ww
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
        padded = (H + ph, W + pw)
        mask = shift_mask_for(padded, self.window_size, (sh, sw), dev) if shifted else None
        windows = window_partition(x, self.window_size, padded, self.dim)
        x = window_reverse(self.attn(windows, mask), self.window_size, padded, self.dim)[:, :H, :W, :]
        if shifted:
            x = x.index_select(1, (rows - sh) % H).index_select(2, (cols - sw) % W)  # roll back
        return x

    def _window_attn(self, x: torch.Tensor) -> torch.Tensor:
        if self.feat_size is None:
            return self._window_attn_dynamic(x)
        # the branches below test constructor config (shift, pad), never tensor shapes
        if any(self.shift_size):
            x = torch.roll(x, shifts=(-self.shift_size[0], -self.shift_size[1]), dims=(1, 2))
        if any(self.pad):
            x = F.pad(x, (0, 0, 0, self.pad[1], 0, self.pad[0]))
        windows = window_partition(x, self.window_size, self.padded_size, self.dim)
        x = window_reverse(self.attn(windows), self.window_size, self.padded_size, self.dim)
        if any(self.pad):
            x = x[:, :self.feat_size[0], :self.feat_size[1], :]
        if any(self.shift_size):
            x = torch.roll(x, shifts=self.shift_size, dims=(1, 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self._window_attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> channels, LayerNorm, Linear; (B, H, W, C) -> (B, H/2, W/2, out_dim).

    Channel order of the 4C vector is (column offset, row offset, C), as the reference's
    x0, x1, x2, x3 = (0,0), (1,0), (0,1), (1,1). Built from two rank-4 transposes instead of a
    rank-6 permute. Odd sizes are padded with static amounts fixed at construction.
    """

    def __init__(self, dim: int, feat_size: tuple[int, int] | None, out_dim: int | None = None):
        super().__init__()
        self.dim = dim
        self.dynamic = feat_size is None  # pads and output size from the input, per forward
        self.pad = None if self.dynamic else (feat_size[0] % 2, feat_size[1] % 2)
        self.out_size = None if self.dynamic else ((feat_size[0] + 1) // 2, (feat_size[1] + 1) // 2)
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim or 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        C = self.dim
        if self.dynamic:
            H, W = x.shape[1], x.shape[2]
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
            Ho, Wo = (H + 1) // 2, (W + 1) // 2
        else:
            if any(self.pad):
                x = F.pad(x, (0, 0, 0, self.pad[1], 0, self.pad[0]))
            Ho, Wo = self.out_size
        x = x.reshape(-1, 2, Wo, 2 * C).transpose(1, 2)  # (B*Ho, Wo, row_off, (col_off, C))
        x = x.reshape(-1, 2, 2, C).transpose(1, 2)  # (B*Ho*Wo, col_off, row_off, C)
        x = x.reshape(-1, Ho, Wo, 4 * C)
        return self.reduction(self.norm(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patch conv + LayerNorm; (B, 3, H, W) -> (B, H/p, W/p, C) (channels last)."""

    def __init__(self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


# ---------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------
class SwinTransformerStage(nn.Module):
    """Optional patch merging, then ``depth`` blocks alternating plain / shifted windows."""

    def __init__(self, dim: int, out_dim: int, in_size: tuple[int, int] | None, depth: int, num_heads: int,
                 window_size: tuple[int, int], downsample: bool, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: Sequence[float] = ()):
        super().__init__()
        if downsample:
            self.downsample = PatchMerging(dim, in_size, out_dim)
            self.out_size = self.downsample.out_size
        else:
            assert dim == out_dim
            self.downsample = nn.Identity()
            self.out_size = in_size
        drop_path = list(drop_path) or [0.0] * depth
        self.blocks = nn.Sequential(*[
            SwinTransformerBlock(out_dim, self.out_size, num_heads, window_size, shift=i % 2 == 1,
                                 mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=drop_path[i])
            for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
class ClassifierHead(nn.Module):
    """Global average pool over (H, W) of channels-last features, then Linear; (B, H, W, C) -> (B, K)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(1, 2))
        return x if pre_logits else self.fc(x)


class SwinTransformer(nn.Module):
    """Swin Transformer for one input size ``img_size``.

    forward: (B, 3, H, W) -> (B, num_classes) logits, or, with ``features_only=True``, the list of
    four stage outputs (B, C_i, H / 4 / 2^i, W / 4 / 2^i) (NCHW, no final norm, no head).

    window_size: one (h, w) window for all stages; stages smaller than it use the whole grid.
    """

    def __init__(self, img_size: int | Sequence[int] = 224, patch_size: int = 4, in_chans: int = 3,
                 num_classes: int = 1000, embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), window_size: int | Sequence[int] = 7,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path_rate: float = 0.1,
                 features_only: bool = False, dynamic_size: bool = False):
        super().__init__()
        self.img_size = to_pair(img_size)
        self.dynamic_size = dynamic_size  # one model for every size >= 32 x window (module doc)
        if self.img_size[0] % patch_size or self.img_size[1] % patch_size:
            raise ValueError(f"img_size {self.img_size} must be a multiple of the patch size {patch_size}")
        self.num_classes = num_classes
        self.features_only = features_only
        window_size = to_pair(window_size)
        self.window_size = window_size
        dims = [int(embed_dim * 2 ** i) for i in range(len(depths))]
        self.num_features = dims[-1]
        self.feature_channels = tuple(dims)

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        feat = None if dynamic_size else (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        layers, in_dim = [], dims[0]
        for i, depth in enumerate(depths):
            stage = SwinTransformerStage(in_dim, dims[i], feat, depth, num_heads[i], window_size, downsample=i > 0,
                                         mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                                         drop_path=dpr[sum(depths[:i]):sum(depths[:i + 1])])
            layers.append(stage)
            feat, in_dim = stage.out_size, dims[i]
        self.layers = nn.Sequential(*layers)
        if not features_only:
            self.norm = nn.LayerNorm(self.num_features)
            self.head = ClassifierHead(self.num_features, num_classes)
        self.apply(_init_weights)

    def _check_input(self, x: torch.Tensor) -> None:
        if self.dynamic_size:
            return  # sizes are the envelope's to check (edgekit.shapes), not a branch in the graph
        # Buffers, pads and reshape targets are built for img_size; any other size would be wrong,
        # so fail loudly. Under tracing the sizes are traced values: the comparison still runs
        # (on the example input) and records nothing, so its TracerWarning is noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            ok = tuple(int(s) for s in x.shape[-2:]) == self.img_size
        if not ok:
            raise ValueError(f"model built for {self.img_size}, got input {tuple(x.shape[-2:])}; "
                             "rebuild it with img_size=(H, W)")

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> four NCHW maps at strides 4, 8, 16, 32."""
        self._check_input(x)
        x = self.patch_embed(x)
        outs = []
        for stage in self.layers:
            x = stage(x)
            outs.append(x.permute(0, 3, 1, 2))
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, H/32, W/32, C) normalized, channels last."""
        self._check_input(x)
        return self.norm(self.layers(self.patch_embed(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.features_only:
            return self.forward_intermediates(x)
        return self.forward_head(self.forward_features(x))


class SwinTransformerSeg(nn.Module):
    """Swin backbone + FPN decoder; (B, 3, H, W) -> (B, num_classes, H/4, W/4) logits."""

    def __init__(self, img_size: int | Sequence[int] = 512, num_classes: int = 150, decoder_channels: int = 128,
                 **backbone_kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = SwinTransformer(img_size=img_size, features_only=True, **backbone_kwargs)
        self.decode_head = FPNHead(self.backbone.feature_channels, num_classes, channels=decoder_channels,
                                   in_strides=(4, 8, 16, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.backbone.forward_intermediates(x))

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's four NCHW maps, strides 4, 8, 16, 32."""
        return self.backbone.forward_intermediates(x)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------
def _resize_bias_table(table: torch.Tensor, window_size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a ((2w-1)^2, heads) table, for a checkpoint trained at another window."""
    src = int(math.isqrt(table.shape[0]))
    dst = (2 * window_size[0] - 1, 2 * window_size[1] - 1)
    grid = table.float().t().reshape(1, -1, src, src)
    grid = F.interpolate(grid, size=dst, mode="bicubic", align_corners=False)
    return grid.reshape(table.shape[1], -1).t().to(table.dtype)


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """Convert a Swin checkpoint to this model's keys.

    Accepted layouts:

    * timm ``swin_tiny_patch4_window7_224`` (``patch_embed.proj``, ``layers.{i}.downsample`` at the
      start of stages 1-3, ``layers.{i}.blocks.{j}.attn.{relative_position_bias_table,qkv,proj}``,
      ``norm``, ``head.fc``): identical keys.
    * the original microsoft/Swin-Transformer layout (``layers.{i}.downsample`` at the *end* of
      stages 0-2, classifier ``head.weight``): downsample indices shift by one, ``head`` -> ``head.fc``.
    * either of them wrapped in ``{"model": ...}`` or ``{"state_dict": ...}``.

    Non-persistent buffers (``relative_position_index``, ``attn_mask``) are dropped; bias tables
    trained at another window size are resized bicubically. For :class:`SwinTransformerSeg`, a
    classification checkpoint initialises ``backbone.*`` (classifier and final norm dropped; load
    with ``strict=False``, the decoder stays at its init); zoo-layout keys pass unchanged.
    """
    state_dict = state_dict.get("model", state_dict)
    state_dict = state_dict.get("state_dict", state_dict)
    original = "layers.0.downsample.reduction.weight" in state_dict
    seg = isinstance(model, SwinTransformerSeg)
    target = model.state_dict()
    out = {}
    for k, v in state_dict.items():
        if k.endswith(("relative_position_index", "attn_mask")):
            continue
        if original:
            k = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", k)
            k = re.sub(r"^head\.(weight|bias)$", r"head.fc.\1", k)
        if seg and not k.startswith(("backbone.", "decode_head.")):
            if k.startswith(("head.", "norm.")):
                continue  # classifier-only parts of a classification checkpoint
            k = "backbone." + k
        if k.endswith("relative_position_bias_table") and k in target and v.shape != target[k].shape:
            v = _resize_bias_table(v, model.get_submodule(k.rsplit(".", 1)[0]).window_size)
        out[k] = v
    return out


def _create_swin(variant: str, seg: bool = False, **kwargs) -> nn.Module:
    if "img_size" in kwargs:
        kwargs["img_size"] = to_pair(kwargs["img_size"])
    model = SwinTransformerSeg(**kwargs) if seg else SwinTransformer(**kwargs)
    model.variant = variant
    return model


# ---------------------------------------------------------------------------------------------
# registered variants
# ---------------------------------------------------------------------------------------------
@register_model(ModelCfg(
    family="swin", task="classification", input_size=(3, 224, 224), num_classes=1000, interpolation="bicubic",
    labels="imagenet", size_divisor=32, window=7, reference={"timm": "swin_tiny_patch4_window7_224"},
    description="Swin-T, window 7, ImageNet-1k classification (timm key layout)"))
def swin_tiny(**kwargs) -> SwinTransformer:
    args = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7)
    return _create_swin("swin_tiny", **{**args, **kwargs})


@register_model(ModelCfg(
    family="swin", task="segmentation", input_size=(3, 512, 512), num_classes=150, labels="ade20k",
    output_stride=4, size_divisor=256, window=8, reference={"timm": "swin_tiny_patch4_window7_224"},
    description="Swin-T (window 8) + light FPN decoder, ADE20K semantic segmentation"))
def swin_tiny_seg(**kwargs) -> SwinTransformerSeg:
    args = dict(img_size=(512, 512), num_classes=150, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                window_size=8, drop_path_rate=0.2)
    return _create_swin("swin_tiny_seg", seg=True, **{**args, **kwargs})
