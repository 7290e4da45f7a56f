"""The corpus's random weights make a model's output depend on the image (tests.compat.weights)."""
from __future__ import annotations

import pytest
import torch

from tests.compat.weights import calibrate_batchnorm, reinitialise

transformers = pytest.importorskip("transformers", reason="transformers is an optional dependency")


def _spread(model, x) -> tuple[float, float]:
    """(largest difference between the two images' outputs, the outputs' std)."""
    with torch.no_grad():
        y = model(pixel_values=x).logits
    return float((y[0] - y[1]).abs().max()), float(y.std())


def test_reinitialised_mobilevit_output_depends_on_the_image():
    """transformers draws BatchNorm weights from N(0, 0.02): as initialised, a tiny MobileViT's signal is gone
    before the head (exactly the same output for any image), which would make its parity check vacuous."""
    torch.manual_seed(0)
    config = transformers.MobileViTConfig(image_size=64, hidden_sizes=[16, 24, 32],
                                          neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64], num_attention_heads=2,
                                          num_labels=5)
    model = transformers.MobileViTForImageClassification(config).eval()
    x = torch.randn(2, 3, 64, 64)
    spread, _ = _spread(model, x)
    assert spread < 1e-6  # what the corpus's weights are for
    reinitialise(model, seed=0)
    calibrate_batchnorm(model, lambda t: model(pixel_values=t), (1, 3, 64, 64), seed=0)
    spread, std = _spread(model.eval(), x)
    assert spread > 0.1 * std > 0
    assert all(not m.training for m in model.modules())  # calibration leaves every BN in eval mode
