"""scripts/train_digits.py's fine-tuning at a deployment size: weights move to the new size intact."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn (pip install scikit-learn)")


def test_resized_keeps_matching_tensors_and_interpolates_bias_tables():
    from scripts.train_digits import _resized

    table = torch.arange(9 * 2, dtype=torch.float32).reshape(9, 2)  # a 3x3 relative-position grid, 2 heads
    state = {"a.weight": torch.ones(4, 4), "blk.relative_position_bias_table": table}
    target = {"a.weight": torch.zeros(4, 4), "blk.relative_position_bias_table": torch.zeros(49, 2)}
    out = _resized(state, target)
    assert out["a.weight"] is state["a.weight"]  # same shape: untouched
    new = out["blk.relative_position_bias_table"]
    assert new.shape == (49, 2)
    grid = new.T.reshape(2, 7, 7)
    assert torch.allclose(grid[:, 3, 3], table.T.reshape(2, 3, 3)[:, 1, 1], atol=1e-5)  # centre stays the centre
    assert torch.all(grid[0, :, 1:] >= grid[0, :, :-1] - 1e-4)  # a ramp stays a ramp along the grid


def test_swin_weights_load_at_a_larger_size_and_run():
    """The recipe's Swin trained at 64 (last stage 2x2, window clamped to 2) loads at 256 (4x4 windows)."""
    from scripts.train_digits import RECIPES, _resized, build

    recipe = RECIPES["swin_tiny"]
    small, large = build(recipe), build(recipe, 256)
    large.load_state_dict(_resized(small.state_dict(), large.state_dict()))
    assert large.edgekit_cfg.input_size == (3, 256, 256)
    with torch.no_grad():
        assert large.eval()(torch.zeros(1, 3, 256, 256)).shape == (1, 10)
