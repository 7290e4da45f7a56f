#!/usr/bin/env python3
"""Train small zoo models on real labeled data, so quantization is judged on trained weights.

Random weights say nothing about quantization (their activations have no outliers, their logits
no margins). No pretrained weights can be downloaded here, so this script trains small variants
of zoo models on scikit-learn's bundled handwritten digits (1797 labeled 8x8 scans, installed with
scikit-learn, no download):

- classification: each digit rendered into a 64x64 RGB photo-like image (random colours, scale,
  position and sensor noise), 10 classes;
- segmentation: 96x96 mosaics of up to 9 digits with per-pixel labels (0 = background, 1 + digit),
  11 classes.

Digits are split 80/20 *before* rendering, so validation images show digits never seen in training.
Checkpoints and the labeled folders go under ``$EDGEKIT_CACHE`` (default ``~/.cache/edgekit``)::

    digits/ckpt/<recipe>.pt               state dict of the trained model
    digits/ckpt/<recipe>@<size>.pt        the same fine-tuned at a deployment size (see finetune)
    digits/cls/val/<class>/*.png          edgekit evaluate layout for classification (360 images)
    digits/cls/calib/*.png                calibration images (train split, 128: one changed top-1 is
                                          0.8 points, so a 1-point --max-drop budget can be measured)
    digits/seg/val/{images,masks}/*.png   edgekit evaluate layout for segmentation (PNG label maps)
    digits/seg/calib/*.png

Usage (a few minutes per model on 2 cores)::

    python scripts/train_digits.py                      # every recipe, skipping cached checkpoints
    python scripts/train_digits.py efficientvit_b0 --force
    python scripts/train_digits.py swin_tiny@256          # fine-tune the trained model at 256x256

The trained models are model sources for edgekit (run from the repository root)::

    PYTHONPATH=. edgekit export scripts.train_digits:efficientvit_b0_digits --target onnx --precision int8 \\
        --calib ~/.cache/edgekit/digits/cls/calib
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLS_SIZE = 64
CLS_CALIB = 128  # calibration renders: >= 100, so one changed top-1 (100/N points) fits a 1-point budget
SEG_SIZE = 96
SEG_GRID = 3


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "digits"


# --------------------------------------------------------------------------------------------- data

def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """sklearn digits split 80/20 by a fixed permutation: (train images, train labels, val images, val labels);
    images float32 (N, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(images))
    n_train = int(0.8 * len(images))
    tr, va = order[:n_train], order[n_train:]
    return images[tr], d.target[tr], images[va], d.target[va]


def _glyph(digit: np.ndarray, size: int) -> np.ndarray:
    """(8, 8) intensity in [0, 1] -> (size, size) alpha, bilinear."""
    from PIL import Image

    im = Image.fromarray((digit * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    return np.asarray(im, np.float32) / 255.0


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paper and ink RGB of random hues, ink darker (with both polarities a small model needs many
    times the steps to learn the digits at all)."""
    return rng.uniform(130, 255, 3), rng.uniform(0, 100, 3)


def _background(rng: np.random.Generator, size: int, bg: np.ndarray) -> np.ndarray:
    """Flat colour + a random linear gradient + sensor noise, (size, size, 3) float."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    grad = (rng.uniform(-40, 40) * xx + rng.uniform(-40, 40) * yy)[..., None]
    return bg + grad + rng.normal(0, 8, (size, size, 3))


def render_classification(digits: np.ndarray, seed: int) -> np.ndarray:
    """One 64x64 RGB uint8 image per digit: (N, 64, 64, 3)."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(digits), CLS_SIZE, CLS_SIZE, 3), np.uint8)
    for i, d in enumerate(digits):
        bg, fg = _colours(rng)
        img = _background(rng, CLS_SIZE, bg)
        s = int(rng.integers(34, 58))
        y, x = rng.integers(0, CLS_SIZE - s + 1, 2)
        a = _glyph(d, s)[..., None]
        img[y:y + s, x:x + s] = img[y:y + s, x:x + s] * (1 - a) + fg * a
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def render_segmentation(digits: np.ndarray, labels: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` 96x96 mosaics: images (N, 96, 96, 3) uint8 and label maps (N, 96, 96) uint8,
    0 = background, 1 + d for a pixel of digit d."""
    rng = np.random.default_rng(seed)
    cell = SEG_SIZE // SEG_GRID
    images = np.empty((count, SEG_SIZE, SEG_SIZE, 3), np.uint8)
    masks = np.zeros((count, SEG_SIZE, SEG_SIZE), np.uint8)
    for n in range(count):
        bg, _ = _colours(rng)
        img = _background(rng, SEG_SIZE, bg)
        for gy in range(SEG_GRID):
            for gx in range(SEG_GRID):
                if rng.random() < 0.25:
                    continue
                k = int(rng.integers(len(digits)))
                fg = _colours(rng)[1]
                s = int(rng.integers(22, cell + 1))
                y = gy * cell + int(rng.integers(0, cell - s + 1))
                x = gx * cell + int(rng.integers(0, cell - s + 1))
                a = _glyph(digits[k], s)
                img[y:y + s, x:x + s] = img[y:y + s, x:x + s] * (1 - a[..., None]) + fg * a[..., None]
                region = masks[n, y:y + s, x:x + s]
                region[a > 0.5] = labels[k] + 1
        images[n] = np.clip(img, 0, 255).astype(np.uint8)
    return images, masks


def write_folders(root: Path | None = None) -> Path:
    """Write the evaluation and calibration folders (idempotent); returns the digits cache dir."""
    from PIL import Image

    root = root or cache_dir()
    stamp = root / ".folders-v3"
    if stamp.exists():
        return root
    tr_x, tr_y, va_x, va_y = _digits()
    for i, (img, y) in enumerate(zip(render_classification(va_x, seed=1), va_y)):
        p = root / "cls" / "val" / str(int(y)) / f"{i:04d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p)
    (root / "cls" / "calib").mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(render_classification(tr_x[:CLS_CALIB], seed=2)):
        Image.fromarray(img).save(root / "cls" / "calib" / f"{i:04d}.png")
    images, masks = render_segmentation(va_x, va_y, 100, seed=3)
    for sub in ("images", "masks"):
        (root / "seg" / "val" / sub).mkdir(parents=True, exist_ok=True)
    for i, (img, m) in enumerate(zip(images, masks)):
        Image.fromarray(img).save(root / "seg" / "val" / "images" / f"{i:04d}.png")
        Image.fromarray(m).save(root / "seg" / "val" / "masks" / f"{i:04d}.png")
    (root / "seg" / "calib").mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(render_segmentation(tr_x, tr_y, 32, seed=4)[0]):
        Image.fromarray(img).save(root / "seg" / "calib" / f"{i:04d}.png")
    stamp.write_text("ok\n")
    return root


def normalize(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W), exactly edgekit's Preprocess (no resize: rendered at size)."""
    x = images.astype(np.float32) / 255.0
    x = (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


# --------------------------------------------------------------------------------------------- tiny hybrid

class _Block(nn.Module):
    """Pre-norm transformer block on (B, N, C) tokens: LayerNorm, softmax attention, GELU MLP."""

    def __init__(self, dim: int, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        b, n, c = t.shape
        q, k, v = self.qkv(self.norm1(t)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5).softmax(-1)
        t = t + self.proj((a @ v).transpose(1, 2).reshape(b, n, c))
        return t + self.mlp(self.norm2(t))


class TinyHybrid(nn.Module):
    """A small conv-attention model with every op quantization must handle (conv stem, BN, LayerNorm,
    softmax attention, GELU, linear head): (B, 3, H, W) -> (B, classes) or, with ``seg``, (B, classes,
    H / 4, W / 4). Trains on the digits in well under a minute, for the test suite."""

    def __init__(self, num_classes: int = 10, dim: int = 48, seg: bool = False):
        super().__init__()
        self.seg = seg

        def conv(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.stem = conv(3, 16)
        self.stages = nn.Sequential(conv(16, 32), conv(32, dim))
        self.blocks = nn.Sequential(_Block(dim), _Block(dim))
        self.head = nn.Conv2d(dim, num_classes, 1) if seg else nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        b, c, h, w = x.shape
        t = self.blocks(x.flatten(2).transpose(1, 2))
        if not self.seg:
            return self.head(t.mean(1))
        y = self.head(t.transpose(1, 2).reshape(b, c, h, w))
        return F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)


def tiny_hybrid(num_classes: int = 10) -> TinyHybrid:
    return TinyHybrid(num_classes)


def tiny_hybrid_seg(num_classes: int = 11) -> TinyHybrid:
    return TinyHybrid(num_classes, seg=True)


def hf_segformer(num_classes: int = 11) -> nn.Module:
    """A small transformers SegFormer (four stages of one block, 16-64 channels), wrapped to return its logits
    (B, classes, H / 4, W / 4); ``.model`` is the transformers model, for ``save_pretrained``."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    from edgekit.sources.hf import SegmentationLogits

    config = SegformerConfig(hidden_sizes=[16, 32, 48, 64], num_attention_heads=[1, 2, 2, 4], depths=[1, 1, 1, 1],
                             decoder_hidden_size=64, num_labels=num_classes, sr_ratios=[8, 4, 2, 1],
                             id2label={0: "background", **{i + 1: f"digit {i}" for i in range(num_classes - 1)}})
    config.label2id = {v: k for k, v in config.id2label.items()}
    return SegmentationLogits(SegformerForSemanticSegmentation(config))


# --------------------------------------------------------------------------------------------- recipes

@dataclass(frozen=True)
class Recipe:
    """A zoo model (or a test fixture) at a small size, and how long to train it."""

    name: str
    build: str  # "zoo:<name>" or "module:factory" for fixtures
    task: str
    kwargs: dict = field(default_factory=dict)
    epochs: int = 6
    lr: float = 1e-3
    batch: int = 16
    seg_per_epoch: int = 480  # mosaics rendered per segmentation epoch
    finetune_epochs: int = 3  # at a deployment size (see finetune)
    finetune_lr_scale: float = 1 / 3  # of lr

    @property
    def size(self) -> int:
        return CLS_SIZE if self.task == "classification" else SEG_SIZE

    @property
    def num_classes(self) -> int:
        return 10 if self.task == "classification" else 11


RECIPES = {r.name: r for r in (
    # ~2000 steps each: from scratch, these need a few hundred steps before the loss leaves chance level
    Recipe("efficientvit_b0", "zoo:efficientvit_b0", "classification", {}, epochs=24),
    # Swin at 64x64 with 4x4 windows, half width and 2 blocks per stage (Swin-T is 28M parameters)
    Recipe("swin_tiny", "zoo:swin_tiny", "classification",
           dict(window_size=4, embed_dim=48, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16), drop_path_rate=0.05),
           epochs=24, lr=3e-4, batch=32,  # measured: 1e-3 stalls near chance for ~500 steps, 3e-3 never leaves it
           # at 256 its last stage runs shifted 4x4 windows it never had at 64 (2x2 maps): 3 epochs at lr/3 gave 50%
           finetune_epochs=6, finetune_lr_scale=1.0),
    # full Swin-T width and depth (28M parameters), 4x4 windows: for latency where int8 GEMMs dominate, as in
    # a deployed Swin; ~25 s per epoch at 64 pixels and ~4.5 min per fine-tune epoch at 256 on 2 idle cores
    Recipe("swin_t", "zoo:swin_tiny", "classification",
           dict(window_size=4, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.1),
           epochs=24, lr=3e-4, batch=32, finetune_epochs=4, finetune_lr_scale=1.0),
    # Swin-T with its segmentation head (28M parameters), 4x4 windows: the deployment-size segmentation hybrid
    Recipe("swin_t_seg", "zoo:swin_tiny_seg", "segmentation", dict(window_size=4, drop_path_rate=0.1),
           epochs=30, lr=3e-4, finetune_epochs=6, finetune_lr_scale=1.0),
    Recipe("segformer_b0", "zoo:segformer_b0", "segmentation", {}, epochs=20,
           finetune_epochs=6, finetune_lr_scale=1.0),  # at 384: 3 epochs at lr/3 gave mIoU 0.23 (0.80 at 96)
    Recipe("efficientvit_b0_seg", "zoo:efficientvit_b0_seg", "segmentation", {}, epochs=20),
    # tiny hybrids (above): trained in well under a minute on an idle machine, for the test suite
    Recipe("tiny_classifier", "local:tiny_hybrid", "classification", {}, epochs=12, lr=3e-3, batch=32),
    # a timm architecture fine-tuned on the digits' ten classes, as users fine-tune timm backbones on theirs; saved
    # as a state dict, a timm directory and a transformers directory by the "models you bring" flow (tests/test_user_flow.py)
    # (MobileViT: convolutions and attention, and among the small timm hybrids the fastest to learn from scratch here:
    # 75% top-1 after 200 steps, where test_vit had 14%, test_mambaout 52%, the tiny hybrid 43%)
    Recipe("timm_mobilevit", "timm:mobilevit_xxs", "classification", {}, epochs=8, lr=2e-3, batch=32),
    # a transformers model trained the same way, saved with save_pretrained by the same flow
    Recipe("hf_segformer", "local:hf_segformer", "segmentation", {}, epochs=12, lr=3e-3, batch=32, seg_per_epoch=960),
    Recipe("tiny_segmenter", "local:tiny_hybrid_seg", "segmentation", {}, epochs=12, lr=3e-3, batch=32,
           seg_per_epoch=960),
)}


def build(recipe: Recipe, size: int | None = None) -> nn.Module:
    """The untrained model with ``edgekit_cfg`` describing its input, preprocessing and classes.

    size: build for this input size instead of the training size (same weights: attention masks and
    bias indices are buffers rebuilt per size), to measure latency where int8 matters."""
    from edgekit.models import ModelCfg, create_model

    size = (size or recipe.size,) * 2
    if recipe.build.startswith("zoo:"):
        model = create_model(recipe.build[4:], img_size=size, num_classes=recipe.num_classes, **recipe.kwargs)
    elif recipe.build.startswith("timm:"):
        from edgekit.timm_compat import import_timm

        timm = import_timm()
        try:
            model = timm.create_model(recipe.build[5:], pretrained=False, num_classes=recipe.num_classes,
                                      **{**recipe.kwargs, "img_size": size})
        except TypeError:  # an architecture that takes any size
            model = timm.create_model(recipe.build[5:], pretrained=False, num_classes=recipe.num_classes,
                                      **recipe.kwargs)
        return model  # a plain timm model, as users have it: edgekit reads its pretrained_cfg
    else:
        model = globals()[recipe.build.split(":")[1]](num_classes=recipe.num_classes, **recipe.kwargs)
    stride = 1
    if recipe.task == "segmentation":
        with torch.no_grad():
            stride = size[0] // model.eval()(torch.zeros(1, 3, *size)).shape[-1]
    model.edgekit_cfg = ModelCfg(family=getattr(getattr(model, "edgekit_cfg", None), "family", "digits"),
                                 task=recipe.task, input_size=(3, *size), num_classes=recipe.num_classes,
                                 labels="", output_stride=stride, size_divisor=1)
    return model


def checkpoint_path(name: str) -> Path:
    return cache_dir() / "ckpt" / f"{name}.pt"


def train(recipe: Recipe, force: bool = False, log=print) -> Path:
    """Train ``recipe`` (or reuse its cached checkpoint); returns the checkpoint path."""
    path = checkpoint_path(recipe.name)
    if path.exists() and not force:
        return path
    torch.manual_seed(0)
    model = build(recipe).train()
    steps_per_epoch = (len(_digits()[0]) if recipe.task == "classification" else recipe.seg_per_epoch) // recipe.batch
    _fit(model, recipe, recipe.epochs, recipe.lr, steps_per_epoch, seed=100, pct_start=0.15, size=None,
         label=recipe.name, log=log)
    return _save(model, path, f"{recipe.name}: {describe_accuracy(model, recipe)}", log)


def _fit(model: nn.Module, recipe: Recipe, epochs: int, lr: float, steps_per_epoch: int, seed: int,
         pct_start: float, size: int | None, label: str, log) -> None:
    """AdamW + one-cycle over fresh renders every epoch (colours, scales, positions and noise are the
    augmentation), upscaled to ``size`` when given."""
    tr_x, tr_y, _, _ = _digits()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    # background is ~3/4 of the pixels: weigh it down so the digits are learned, not the prior
    weight = None if recipe.task == "classification" else torch.tensor([0.3] + [1.0] * 10)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch, pct_start=pct_start)
    start = time.perf_counter()
    for epoch in range(epochs):
        if recipe.task == "classification":
            x_all, y_all = normalize(render_classification(tr_x, seed=seed + epoch)), torch.from_numpy(tr_y).long()
        else:
            imgs, masks = render_segmentation(tr_x, tr_y, steps_per_epoch * recipe.batch, seed=seed + epoch)
            x_all, y_all = normalize(imgs), torch.from_numpy(masks).long()
        order = torch.randperm(len(x_all))
        total = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * recipe.batch:(i + 1) * recipe.batch]
            out = model(_upscale(x_all[idx], size))
            if recipe.task == "segmentation":
                out = F.interpolate(out, size=y_all.shape[-2:], mode="bilinear", align_corners=False)
            loss = F.cross_entropy(out, y_all[idx], weight=weight, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        log(f"{label} epoch {epoch + 1}/{epochs} loss {total / steps_per_epoch:.3f} "
            f"({time.perf_counter() - start:.0f} s)")
    model.eval()


def _save(model: nn.Module, path: Path, described: str, log) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    log(f"{described} -> {path}")
    return path


def _upscale(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Rendered images at ``size`` (bilinear, as the bundle's preprocessing upscales the labeled folders)."""
    return x if not size or size == x.shape[-1] else F.interpolate(x, size=(size, size), mode="bilinear",
                                                                   align_corners=False)


def _resized(state: dict, target: dict) -> dict:
    """``state`` with each relative position bias table resized (bicubic) to ``target``'s: a Swin stage
    whose feature map was smaller than the window at the training size ran a smaller window there."""
    out = dict(state)
    for k, v in state.items():
        if k.endswith("relative_position_bias_table") and v.shape != target[k].shape:
            side, new = int(v.shape[0] ** 0.5), int(target[k].shape[0] ** 0.5)
            grid = v.T.reshape(1, -1, side, side)
            out[k] = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False).reshape(-1, new * new).T
    return out


def finetune(recipe: Recipe, size: int, force: bool = False, log=print) -> Path:
    """Fine-tune the trained ``recipe`` at ``size`` (digits upscaled, as a deployed model sees them); returns
    the checkpoint path. Trained at 64/96 pixels, the models lose their accuracy when run at 256+ (scale
    shift: efficientvit_b0 fell to chance); a few epochs at the deployment size bring it back, and latency
    measured at that size is where INT8 pays."""
    path = checkpoint_path(f"{recipe.name}@{size}")
    if path.exists() and not force:
        return path
    base = train(recipe, log=log)
    torch.manual_seed(1)
    model = build(recipe, size)
    model.load_state_dict(_resized(torch.load(base, map_location="cpu", weights_only=True), model.state_dict()))
    model.train()
    n = len(_digits()[0]) if recipe.task == "classification" else recipe.seg_per_epoch // 2
    steps_per_epoch = n // recipe.batch
    _fit(model, recipe, recipe.finetune_epochs, recipe.lr * recipe.finetune_lr_scale, steps_per_epoch, seed=200,
         pct_start=0.1, size=size, label=f"{recipe.name}@{size}", log=log)
    return _save(model, path, f"{recipe.name}@{size}: {describe_accuracy(model, recipe, size)}", log)


def describe_accuracy(model: nn.Module, recipe: Recipe, size: int | None = None) -> str:
    """PyTorch fp32 accuracy on the validation split (as written by write_folders), upscaled to ``size``."""
    _, _, va_x, va_y = _digits()
    with torch.no_grad():
        if recipe.task == "classification":
            pred = model(_upscale(normalize(render_classification(va_x, seed=1)), size)).argmax(1).numpy()
            return f"top-1 {(pred == va_y).mean() * 100:.1f}% on {len(va_y)} validation images"
        images, masks = render_segmentation(va_x, va_y, 100, seed=3)
        out = F.interpolate(model(_upscale(normalize(images), size)), size=masks.shape[-2:], mode="bilinear",
                            align_corners=False)
        from edgekit.accuracy import mean_iou

        return f"mIoU {mean_iou(out.argmax(1).numpy(), masks, recipe.num_classes):.3f} on {len(masks)} validation mosaics"


def load_trained(name: str, size: int | None = None) -> nn.Module:
    """The trained model in eval mode (training it first when no checkpoint is cached), built for ``size``."""
    recipe = RECIPES[name]
    path = finetune(recipe, size) if size and size != recipe.size else train(recipe)
    model = build(recipe, size)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


# model sources for edgekit: ``scripts.train_digits:<name>_digits``
def efficientvit_b0_digits() -> nn.Module:
    return load_trained("efficientvit_b0")


def swin_tiny_digits() -> nn.Module:
    return load_trained("swin_tiny")


def swin_t_digits() -> nn.Module:
    return load_trained("swin_t")


def segformer_b0_digits() -> nn.Module:
    return load_trained("segformer_b0")


def swin_t_seg_digits() -> nn.Module:
    return load_trained("swin_t_seg")


def efficientvit_b0_seg_digits() -> nn.Module:
    return load_trained("efficientvit_b0_seg")


# the same weights at a deployment-like resolution (images upscaled by the preprocessing): for latency
def efficientvit_b0_digits_256() -> nn.Module:
    return load_trained("efficientvit_b0", 256)


def swin_tiny_digits_256() -> nn.Module:
    return load_trained("swin_tiny", 256)


def swin_t_digits_256() -> nn.Module:
    return load_trained("swin_t", 256)


def swin_t_seg_digits_256() -> nn.Module:
    return load_trained("swin_t_seg", 256)


def segformer_b0_digits_384() -> nn.Module:
    return load_trained("segformer_b0", 384)


def tiny_classifier_digits() -> nn.Module:
    return load_trained("tiny_classifier")


def tiny_segmenter_digits() -> nn.Module:
    return load_trained("tiny_segmenter")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="*", default=[n for n in RECIPES if not n.startswith("tiny_")],
                        help=f"which to train (default: all zoo recipes); choose from {', '.join(RECIPES)}; NAME@SIZE "
                             "fine-tunes the trained NAME at SIZE pixels")
    parser.add_argument("--force", action="store_true", help="retrain even when a checkpoint is cached")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = write_folders()
    print(f"labeled folders under {root}")
    for arg in args.recipes:
        name, _, size = arg.partition("@")
        if name not in RECIPES or (size and not size.isdigit()):
            parser.error(f"unknown recipe {arg!r}; choose from {', '.join(RECIPES)} (optionally @SIZE to fine-tune)")
        if size:
            finetune(RECIPES[name], int(size), force=args.force)
        else:
            train(RECIPES[name], force=args.force)


if __name__ == "__main__":
    main()
