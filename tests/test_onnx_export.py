"""edgekit.stages.onnx_export: what a failed export says."""
from __future__ import annotations

import pytest
import torch

from edgekit.stages import onnx_export
from edgekit.errors import EdgekitFailure


def test_failure_is_one_plain_line_per_exporter(monkeypatch):
    """Each exporter's first line, without the terminal colour codes the dynamo exporter writes
    ("Failed to decompose the FX graph ... \\x1b[96mThis is step 2/3\\x1b[0m of exporting")."""
    def torchscript(*_):
        raise RuntimeError("Unsupported: ONNX export of operator adaptive_avg_pool2d\n  graph(%x : Float(1, 3))")

    def dynamo(*_):
        raise RuntimeError("Failed to decompose. \x1b[96mThis is step 2/3\x1b[0m of exporting\nNext steps: ...")

    monkeypatch.setattr(onnx_export, "_export_torchscript", torchscript)
    monkeypatch.setattr(onnx_export, "_export_dynamo", dynamo)
    with pytest.raises(EdgekitFailure) as err:
        onnx_export.export_onnx(torch.nn.Identity(), (1, 3, 8, 8))
    assert str(err.value) == ("ONNX export failed with every exporter: torchscript exporter: Unsupported: ONNX export "
                              "of operator adaptive_avg_pool2d | dynamo exporter: Failed to decompose. This is step "
                              "2/3 of exporting")
