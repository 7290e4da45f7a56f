"""Every zoo model through every target's swaps and rules keeps PyTorch's numbers (the fp32 parity gate).

Small inputs (64x64 classification, 128-256 segmentation) and random weights with randomized norms.
Per target: ONNX Runtime runs its bundle's ONNX; OpenVINO compiles it (plugins inlined, f32);
TensorRT's ONNX is run by ONNX Runtime through the plugins' function bodies (no TensorRT here);
CoreML's swaps are checked in PyTorch (coremltools conversion is tested with the CoreML target).
One export per distinct set of swaps that fired. By default one model per family with attention runs;
``EDGEKIT_FULL_ZOO=1`` runs every registered model.
"""
from __future__ import annotations

import copy
import os

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgekit.config import Target
from edgekit.models import _registry as reg
from edgekit.stages.onnx_export import export_onnx, prepare_for_deploy
from edgekit.plugins import attach_functions
from edgekit.plugins_bridge import inline_plugin_functions, uses_plugins
from edgekit.rewrite import RewriteReport, apply_rewrites, apply_swaps
from tests.models.randomize import randomize_norms
from tests.rewrite.harness import run

MODELS = reg.list_models() if os.environ.get("EDGEKIT_FULL_ZOO") else [
    m for m in ("swin_tiny", "efficientvit_b0", "segformer_b0", "nextvit_small", "seaformer_small", "fastvit_sa12",
                "efficientformerv2_s1") if m in reg.list_models()]
COSINE = 0.99999  # the default fp32 gate (Tolerance.default)
MAX_ABS_REL = 1e-3  # of the reference output's range


def _side(cfg) -> int:
    divisor = getattr(cfg, "size_divisor", 32) or 32
    side = 64 if cfg.task == "classification" else 128
    return max(divisor, -(-side // divisor) * divisor)


def _assert_parity(got: np.ndarray, want: np.ndarray, what: str) -> None:
    a, b = got.ravel().astype(np.float64), want.ravel().astype(np.float64)
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    rel = float(np.abs(a - b).max() / (b.max() - b.min()))
    assert cosine >= COSINE and rel <= MAX_ABS_REL, f"{what}: cosine {cosine:.7f}, max abs / range {rel:.2e}"


def _openvino(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(inline_plugin_functions(model).SerializeToString(), b""), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2})
    return compiled(x)[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_through_every_pipeline(name):
    cfg = reg.get_cfg(name)
    side = _side(cfg)
    torch.manual_seed(0)
    model = reg.create_model(name, img_size=(side, side))
    randomize_norms(model, affine=False)
    model = prepare_for_deploy(model)
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        want = model(x).numpy()

    exports: dict[tuple, onnx.ModelProto] = {}
    for target in Target:
        report = RewriteReport()
        swapped = apply_swaps(copy.deepcopy(model), target, report)
        with torch.no_grad():  # a swap replaces a core by the same math (plugin references in fp32)
            _assert_parity(swapped(x).numpy(), want, f"{target.value} swapped module in PyTorch")
        fired = tuple(sorted(k for k, v in report.swaps.items() if v))
        if fired not in exports:
            exports[fired] = export_onnx(swapped, tuple(x.shape)).model
        proto = apply_rewrites(exports[fired], target, report)
        if uses_plugins(proto):
            proto = attach_functions(proto)
        feeds = {proto.graph.input[0].name: x.numpy()}
        got = _openvino(proto, x.numpy()) if target is Target.OPENVINO else run(proto, feeds)[0]
        _assert_parity(got, want, f"{target.value} pipeline ({report.rules})")
        if target is Target.TRT and any(_plugin_candidate(m) for m in model.modules()):
            assert uses_plugins(proto), "TensorRT's ONNX of a windowed / linear attention model carries plugin nodes"


def _plugin_candidate(module: nn.Module) -> bool:
    from edgekit.models.efficientvit import LiteMLA
    from edgekit.models.swin import WindowAttention

    return isinstance(module, WindowAttention) or (isinstance(module, LiteMLA) and not module.quadratic)
