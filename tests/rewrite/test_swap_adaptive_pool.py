"""adaptive_pool_matrices swap: adaptive average pooling to sizes that do not divide the input exports."""
import numpy as np
import pytest
import torch

from edgekit.rewrite.swaps import adaptive_pool
from tests.rewrite.harness import export, ops, run


class _Pyramid(torch.nn.Module):
    """UperNet's pyramid pooling: the map pooled to 1, 2, 3 and 6 cells (and a 2x3 one), each upsampled back."""

    def __init__(self):
        super().__init__()
        self.pools = torch.nn.ModuleList(torch.nn.AdaptiveAvgPool2d(s) for s in (1, 2, 3, 6, (2, 3)))

    def forward(self, x):
        size = x.shape[-2:]
        return torch.cat([torch.nn.functional.interpolate(p(x), size=size) for p in self.pools], 1)


@pytest.mark.parametrize("hw", [(2, 2), (5, 7), (6, 6)])
def test_pyramid_pooling_exports_and_matches(hw):
    torch.manual_seed(0)
    model, x = _Pyramid().eval(), torch.randn(1, 4, *hw)
    with torch.no_grad():
        before = model(x).numpy()
    if hw != (6, 6):  # what the swap is for: the exporter refuses sizes that do not divide
        with pytest.raises(Exception, match="adaptive_avg_pool2d"):
            export(model, x)
    assert adaptive_pool.apply(model) == 4  # the global pool (1) always divides: left alone
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), before, rtol=1e-6, atol=1e-6)  # same sums, other order
    exported = export(model, x)
    np.testing.assert_allclose(run(exported, {"x0": x.numpy()})[0], before, rtol=1e-5, atol=1e-6)
    if hw == (6, 6):  # 1, 2, 3, 6 and 2x3 all divide 6x6: the module's own forward, no matrices
        assert "MatMul" not in ops(exported)


def test_pooling_matrix_rows_are_adaptive_cells():
    m = adaptive_pool.pooling_matrix(5, 3)
    expected = torch.nn.functional.adaptive_avg_pool1d(torch.eye(5)[None], 3)[0].T  # cell i's weights per element
    torch.testing.assert_close(m, expected, rtol=0, atol=1e-7)
    assert adaptive_pool.apply(torch.nn.Sequential(torch.nn.Linear(2, 2))) == 0
