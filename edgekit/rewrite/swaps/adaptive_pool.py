"""Adaptive average pooling whose output size does not divide its input size, as two constant matrices.

Both of torch.onnx's exporters refuse ``nn.AdaptiveAvgPool2d`` when an output size does not divide the
input size ("ONNX export of operator adaptive_avg_pool2d, output size that are not factor of input size";
the dynamo exporter fails to decompose it): transformers' UperNet pools its last feature map to 1, 2, 3
and 6 cells, and a 64x64 image gives its Swin backbone a 2x2 last map. With the input size fixed at
export, adaptive pooling is linear: cell i of an axis of n elements averages elements
floor(i n / o) .. ceil((i + 1) n / o) - 1, so::

    AdaptiveAvgPool2d(o_h, o_w)(x)  ==  P_h @ x @ P_w^T      P: (o, n) averaging matrices

which exports as two MatMuls with constant matrices. Where the sizes divide, the module's own forward runs
(the exporter writes an AveragePool). Numerics: the same sums, in another order (1e-6 relative).
"""
from __future__ import annotations

import torch
from torch import nn

from edgekit.rewrite.swaps import swap_class

NAME = "adaptive_pool_matrices"
REPLACES = "nn.AdaptiveAvgPool2d"


def apply(model: nn.Module) -> int:
    """Swap every AdaptiveAvgPool2d with an output size above 1 (a global pool always divides)."""
    return swap_class(model, nn.AdaptiveAvgPool2d, _matrices, accept=_not_global)


def _not_global(module: nn.AdaptiveAvgPool2d) -> bool:
    size = module.output_size if isinstance(module.output_size, (tuple, list)) else (module.output_size,)
    return any(s is not None and s > 1 for s in size)


def pooling_matrix(n: int, o: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(o, n): row i averages the elements adaptive pooling puts in cell i."""
    rows = torch.zeros(o, n, dtype=dtype)
    for i in range(o):
        start, end = (i * n) // o, -((-(i + 1) * n) // o)
        rows[i, start:end] = 1.0 / (end - start)
    return rows


def _matrices(cls: type) -> type:
    class MatrixAdaptiveAvgPool2d(cls):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, w = int(x.shape[-2]), int(x.shape[-1])  # static at export: the matrices are constants
            size = self.output_size if isinstance(self.output_size, (tuple, list)) else (self.output_size,) * 2
            oh, ow = (n if o is None else int(o) for o, n in zip(size, (h, w)))
            if h % oh == 0 and w % ow == 0:
                return super().forward(x)
            return pooling_matrix(h, oh, x.dtype) @ x @ pooling_matrix(w, ow, x.dtype).T

    return MatrixAdaptiveAvgPool2d
