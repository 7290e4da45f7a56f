"""Model FLOPs and parameter counts, from PyTorch's own FLOP counter (matmuls and convolutions)."""
from __future__ import annotations

import torch
from torch import nn


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int | None:
    """FLOPs of one forward pass (2 per multiply-accumulate) at ``input_shape``; None when PyTorch's counter
    cannot follow the model (the figure is informational and never stops an export).

    Parameters are frozen while counting: the counter's module tracker asserts a gradient function on outputs
    that require grad, which some models (timm's CaiT, PiT) produce even under no_grad."""
    from torch.utils.flop_counter import FlopCounterMode

    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(*input_shape))
    except Exception:  # noqa: BLE001 - a counter that cannot trace the model says nothing about the export
        return None
    finally:
        for p in params:
            p.requires_grad_(True)
    return int(counter.get_total_flops())


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
