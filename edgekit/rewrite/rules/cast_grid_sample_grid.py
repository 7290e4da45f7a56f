"""A GridSample's sampling grid cast to the type of the image it samples.

The TorchScript exporter can compute a sampling grid in double where PyTorch computed it in float:
transformers' Mask2Former builds its deformable-attention reference points with ``torch.linspace``, which
traces as a double constant, and the exporter's type promotion then carries the sampling locations in
double up to ``grid_sample`` (measured: every GridSample of its pixel decoder had a float image and a double
grid). ONNX allows that; ONNX Runtime has no kernel for it (the model does not load: "Could not find an
implementation for GridSample(16)")::

    X (float) -------------------------------------------------\\
    grid (double) ----------------------------------------------GridSample --> y
        =>  grid (double) --Cast(to=float)--> GridSample(X, grid') --> y

Numerics: the grid is rounded to float once, after its arithmetic, where PyTorch rounded every step:
differences are float rounding of sampling positions (the Mask2Former export matched PyTorch to cosine
1 - 1e-11).
"""
from __future__ import annotations

import onnx_ir as ir

NAME = "cast_grid_sample_grid"


def rewrite(model: ir.Model) -> tuple[int, str]:
    count = 0
    for node in list(model.graph.all_nodes()):
        if node.op_type != "GridSample" or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            continue
        image, grid = node.inputs[0], node.inputs[1]
        if image is None or grid is None or image.dtype is None or grid.dtype is None or image.dtype == grid.dtype:
            continue
        cast = ir.node("Cast", [grid], attributes={"to": int(image.dtype)}, name=f"{node.name}/cast_grid")
        cast.outputs[0].name = f"{grid.name}/as_{image.dtype.name.lower()}"
        cast.outputs[0].dtype = image.dtype
        cast.outputs[0].shape = grid.shape
        node.graph.insert_before(node, cast)
        node.replace_input_with(1, cast.outputs[0])
        count += 1
    return count, "" if count else "no GridSample whose grid type differs from its image's"
