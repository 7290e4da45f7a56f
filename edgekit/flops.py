"""Model FLOPs and parameter counts, from PyTorch's own FLOP counter (matmuls and convolutions)."""
from __future__ import annotations

import torch
from torch import nn


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass (2 per multiply-accumulate) at ``input_shape``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(*input_shape))
    return int(counter.get_total_flops())


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
