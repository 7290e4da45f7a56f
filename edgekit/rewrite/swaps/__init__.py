"""Torch-level module swaps: attention modules whose exported graph is too fragile to match are
swapped, before export, for a subclass that calls edgekit's plugin op (or an exportable core).

Every module here exposes ``NAME`` and ``apply(model) -> int`` (modules swapped, in place). A swap
changes the class of a module instance to a subclass overriding only the attention core, so
weights, buffers, hooks and ``isinstance`` checks are untouched. Per-target order and reasons live
in :mod:`edgekit.rewrite.registry`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

from torch import nn


def swap_class(model: nn.Module, base: type, make: Callable[[type], type], accept: Callable[[nn.Module], bool] = None
               ) -> int:
    """Give every instance of ``base`` (exactly, or a subclass not yet swapped) the class ``make(its class)``."""
    count = 0
    swapped: dict[type, type] = {}
    for module in _modules(model):
        cls = type(module)
        if not isinstance(module, base) or getattr(cls, "_edgekit_swap", False):
            continue
        if accept is not None and not accept(module):
            continue
        if cls not in swapped:
            new = make(cls)
            new._edgekit_swap = True
            swapped[cls] = new
        module.__class__ = swapped[cls]
        count += 1
    return count


def _modules(model: nn.Module) -> Iterator[nn.Module]:
    yield from model.modules()
