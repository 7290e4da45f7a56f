"""Non-trivial weights for zoo tests: a fresh BatchNorm is an identity, which would hide folding and layout bugs."""
from __future__ import annotations

import torch
from torch import nn


def randomize_bn(model: nn.Module, g: torch.Generator) -> None:
    """Every BatchNorm's statistics and affine params drawn from ``g`` (mean, var, weight, bias per module)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)


def randomize_norms(model: nn.Module, affine: bool = True) -> None:
    """Milder BatchNorm statistics (seed 0) for whole-zoo sweeps; ``affine`` also moves weight and bias."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                if affine and m.affine:
                    m.weight.copy_(1 + torch.randn(m.num_features, generator=g) * 0.1)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
