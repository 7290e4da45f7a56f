"""Helpers the tests share (one of each, instead of a private copy per file)."""
from __future__ import annotations

import numpy as np
import torch


def cosine(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Cosine similarity of two outputs, flattened, computed in float64."""
    a, b = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a), \
        torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b)
    return torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def int8_plan(target):
    """The int8 plan ``target`` (an :class:`edgekit.config.Target`) declares: what edgekit.quant reads for it."""
    from edgekit.targets import get_backend

    return get_backend(target).int8
