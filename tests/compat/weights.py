"""Random weights that make the parity gate mean something.

A freshly initialised model often computes (nearly) the same output for every image, and then an export
that dropped a block, or indexed a bias table wrongly, would still match it. Measured on the corpus at its
input sizes (output spread across two random images): timm zero-initialises Hiera's classifier (0) and every
attention-bias table (LeViT, EfficientViT-MSRA, TinyViT, EfficientFormer), starts CaiT's layer scales at
1e-5 (2e-5), MobileNetV4-hybrid's output is constant to 1e-16; transformers draws BatchNorm weights from
N(0, 0.02), so a MobileViT or MobileNetV2 signal shrinks ~50x per normalisation and reaches exactly 0
before the head (LeViT: 8e-10).

:func:`reinitialise` therefore gives every corpus model well-scaled random weights, seeded: convolution
and linear weights He-normal (fan-in), normalisation weights 1 + N(0, 0.02) and biases N(0, 0.02), and
N(0, 0.02) added to everything else (bias tables, embeddings, tokens, layer scales), so zero tables and
heads become random and the output depends on the image.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

STD = 0.02
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


def reinitialise(model: nn.Module, seed: int) -> nn.Module:
    """Re-draw ``model``'s floating-point parameters in place, as the module docstring says."""
    gen = torch.Generator().manual_seed(seed)

    def noise(p: torch.Tensor) -> torch.Tensor:
        return torch.randn(p.shape, generator=gen, dtype=p.dtype) * STD

    done = set()
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if not isinstance(weight, nn.Parameter) or id(weight) in done:
                continue
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                fan_in = weight[0].numel()
                weight.copy_(torch.randn(weight.shape, generator=gen, dtype=weight.dtype) * fan_in ** -0.5)
            elif isinstance(module, _NORMS):
                weight.copy_(1.0 + noise(weight))
                if module.bias is not None:
                    module.bias.copy_(noise(module.bias))
                    done.add(id(module.bias))
            else:
                continue
            done.add(id(weight))
        for p in model.parameters():
            if p.dtype.is_floating_point and id(p) not in done:
                p.add_(noise(p))
    return model


def calibrate_batchnorm(model: nn.Module, forward, input_shape: tuple[int, ...], seed: int, images: int = 4) -> None:
    """Set every BatchNorm's running mean and variance from one batch of ``images`` seeded N(0, 1) images of
    ``input_shape`` through ``forward(x)``; only the BN layers run in training mode, the rest stays in eval."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average: one batch sets the statistics exactly
        bn.train()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        forward(torch.randn((images, *input_shape[1:]), generator=gen))
    for bn in bns:
        bn.momentum = 0.1
        bn.eval()


def timm_checkpoint(name: str, input_shape: tuple[int, ...], path: Path, seed: int = 0) -> Path:
    """A re-initialised state dict of timm's ``name`` built for ``input_shape``, saved at ``path`` (what a
    user's ``--checkpoint`` is)."""
    from edgekit.timm_compat import import_timm

    timm = import_timm()
    torch.manual_seed(seed)
    try:
        model = timm.create_model(name, pretrained=False, img_size=tuple(input_shape[2:]))
    except TypeError:  # a model that takes any size has no img_size argument (edgekit does the same)
        model = timm.create_model(name, pretrained=False)
    reinitialise(model, seed)
    calibrate_batchnorm(model, model, input_shape, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path
