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


def export_onnx(model: torch.nn.Module, x: torch.Tensor, input_name: str = "input", output_name: str = "output",
                opset: int = 17):
    """``model`` exported at ``x`` by the TorchScript exporter (what edgekit's export uses), as an onnx.ModelProto."""
    import io

    import onnx

    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=opset, input_names=[input_name],
                      output_names=[output_name])
    return onnx.load_from_string(buffer.getvalue())


def run_onnxruntime(model, feeds: dict | np.ndarray, threads: int | None = None) -> list[np.ndarray]:
    """Run an ONNX model (a ModelProto, its bytes or a path) on edgekit's ONNX Runtime engine; an array is fed to
    the first input."""
    from edgekit.engines.onnxruntime import OrtEngine

    source = model.SerializeToString() if hasattr(model, "SerializeToString") else model
    with OrtEngine(source, {}, threads) as engine:
        if not isinstance(feeds, dict):
            feeds = {engine.input_names[0]: np.asarray(feeds)}
        return engine.infer(feeds)


def assert_fp32_parity(got: np.ndarray, expected: np.ndarray) -> None:
    """The default fp32 tolerance (edgekit.config.Tolerance.default): same shape, cosine >= 0.99999 and
    max abs error <= 1e-3 of the reference's range."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape
    assert cosine(got, expected) >= 0.99999
    assert np.abs(got - expected).max() <= 1e-3 * (expected.max() - expected.min())
