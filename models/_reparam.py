"""One tree walker that puts a model in deploy mode.

Every re-parameterizable block owns a ``reparameterize()`` method (RepMixer / MobileOne branches
merged, BatchNorm folded into the preceding conv, ...). ``reparameterize_model`` calls them
bottom-up, so a block sees already-merged children.
"""
from __future__ import annotations

from torch import nn


def reparameterize_model(model: nn.Module) -> nn.Module:
    """Merge re-parameterizable blocks in place; return the model (in eval mode)."""
    model.eval()
    for module in reversed(list(model.modules())):  # children before parents
        if module is not model and hasattr(module, "reparameterize"):
            module.reparameterize()
    if hasattr(model, "reparameterize"):
        model.reparameterize()
    return model
