"""Helpers the tests share (one of each, instead of a private copy per file)."""
from __future__ import annotations

import numpy as np
import pytest
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


def _int8_gemms_saturate() -> bool:
    """Whether this CPU's int8 GEMMs saturate: x86 without VNNI (AVX2 only) multiplies u8 x s8 pairs with
    vpmaddubsw, whose int16 sums clip. ONNX Runtime's fused int8 MatMul with full-range 8-bit weights was 1.25 off
    (of 8.6) on an AMD EPYC exposing AVX2 only, exact with 7-bit weights; VNNI CPUs (AVX512-VNNI, AVX-VNNI) and
    ARM's dot products accumulate in int32 and do not clip."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = set(open("/proc/cpuinfo").read().split())
    except OSError:
        return False
    return not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


# the int8 accuracy tests assert what edgekit's int8 keeps on CPUs whose int8 GEMMs do not saturate; edgekit does
# not yet choose 7-bit weights for CPUs that saturate (docs/quantization.md), so there they would measure that gap
INT8_SATURATES = _int8_gemms_saturate()
needs_unsaturated_int8 = pytest.mark.skipif(
    INT8_SATURATES, reason="this x86 CPU has no VNNI: its int8 GEMMs saturate u8 x s8 pairs, which edgekit's int8 "
                           "does not yet avoid (docs/quantization.md)")


# the zoo's smallest model of each family: what the default tier exports where every model would cost too much
PER_FAMILY = ("efficientformerv2_s1", "efficientvit_b0", "fastvit_t8", "mit_b0", "nextvit_small", "repvit_m1_1",
              "seaformer_small", "swin_tiny")


def zoo_test_shape(name: str) -> str:
    """The smallest square input >= 64 that zoo model ``name``'s size divisor allows, as NxCxHxW: the zoo tests'
    small inputs (windows are clamped to small maps)."""
    from edgekit.models import _registry as reg

    d = reg.get_cfg(name).size_divisor
    side = max(d, -(-64 // d) * d)
    return f"1x3x{side}x{side}"
