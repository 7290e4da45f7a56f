"""Fixtures for the target tests: the TensorRT-flavoured ONNX of a model with both plugin ops."""
from __future__ import annotations

import onnx
import pytest
import torch

from edgekit.config import Precision


@pytest.fixture(scope="session")
def plugin_onnx() -> tuple[onnx.ModelProto, torch.nn.Module]:
    """(TensorRT-flavoured fp32 ONNX, the torch model) of tests.targets.plugin_models.window_classifier."""
    from edgekit.stages.onnx_export import export_onnx
    from edgekit.targets.tensorrt.flavour import trt_flavour
    from tests.targets.plugin_models import window_classifier

    model = window_classifier()
    flavoured, _ = trt_flavour(export_onnx(model, (1, 3, 32, 32)).model, Precision.FP32)
    return flavoured, model


@pytest.fixture(scope="session")
def tiny_onnx() -> tuple[onnx.ModelProto, torch.nn.Module]:
    """(exported ONNX, torch model) of tests.fixtures.tiny:tiny_classifier (LayerNorm + softmax attention)."""
    from edgekit.stages.onnx_export import export_onnx, prepare_for_deploy
    from tests.fixtures.tiny import tiny_classifier

    model = prepare_for_deploy(tiny_classifier())
    return export_onnx(model, (1, 3, 64, 64)).model, model
