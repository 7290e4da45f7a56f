"""ExecuTorch and LiteRT targets here: both run on this CPU (XNNPACK in the executorch wheel's runtime, LiteRT's
interpreter), so every bundle's parity is measured on the program itself; int8 (PT2E with edgekit's islands and
budget) is judged on the trained digits models against their fp32 bundles."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import edgekit
from edgekit.errors import UsageError

pytest.importorskip("executorch", reason="the executorch extra is not installed: pip install 'edgekit[executorch]'")
pytest.importorskip("litert_torch", reason="the litert extra is not installed: pip install 'edgekit[litert]'")

TINY = "tests.fixtures.tiny:tiny_classifier"
SEG = "tests.fixtures.tiny:tiny_segmenter"
CLS_DIGITS = "scripts.train_digits:tiny_classifier_digits"
SEG_DIGITS = "scripts.train_digits:tiny_segmenter_digits"
TARGETS = ("executorch", "litert")


@pytest.fixture(scope="module")
def tiny_bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("mobile")
    return {t: edgekit.export(TINY, t, root / t) for t in TARGETS}


@pytest.mark.parametrize("target", TARGETS)
def test_fp32_bundle_passes_the_gate_and_runs(tiny_bundles, target):
    bundle = tiny_bundles[target]
    m = bundle.manifest
    assert m["target"] == target
    assert m["runtime"]["name"] == target and m["runtime"]["version"]
    assert m["parity"]["measured"] and m["parity"]["passed"], m["parity"]
    assert m["parity"]["cosine_min"] > 0.99999
    assert m["inputs"] == [{"name": "input", "shape": [1, 3, 64, 64], "dtype": "float32", "layout": "NCHW"}]
    assert m["outputs"][0]["shape"] == [1, 10]
    runner = edgekit.runtime.load(bundle.path, threads=1)
    try:
        image = np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8)
        logits = runner(image)
        assert logits.shape == (1, 10) and np.isfinite(logits).all()
        # the same image through the runtime twice gives the same answer (no state kept between runs)
        np.testing.assert_array_equal(runner(image), logits)
    finally:
        runner.close()


def test_executorch_delegation_report(tiny_bundles):
    bundle = tiny_bundles["executorch"]
    report = json.loads((bundle.path / "executorch.json").read_text())["delegation"]
    assert report["delegate"] == "xnnpack" and report["subgraphs"] >= 1
    # every convolution and linear layer is delegated: the FLOPs left on portable kernels are zero here
    assert report["flops"]["total"] > 0 and report["flops"]["share"] == 1.0
    # left on the portable kernels, each with its module and why: an op XNNPACK has no kernel for, and the means
    # of the LayerNorm (written out in two passes), which XNNPACK's partitioner refuses, in its own words
    rows = {(r["op"], r["module"]): r for r in report["portable"]}
    assert rows["aten.expand_copy", "backbone.attn"]["reason"] == "xnnpack has no kernel for aten.expand_copy"
    assert rows["aten.mean", "backbone.attn.norm"]["reason"] == (
        "the xnnpack partitioner refused it: mean.dim only supports averaging 4D tensors, got tensor of rank 3")
    assert bundle.manifest["export"]["delegation"]["nodes"] == report["nodes"]


class _Erf(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(torch.erf(self.conv(x)).mean((2, 3)))


def test_portable_op_named_with_module_and_reason(tmp_path):
    from edgekit.targets.executorch.lower import lower
    from edgekit.targets.torch_program import Flat, capture

    model = Flat(_Erf()).eval()
    _, report, mapping = lower(capture(model, torch.randn(1, 3, 16, 16), "test"), "xnnpack")
    erf = next(r for r in report["portable"] if r["op"] == "aten.erf")
    assert erf["module"] == "(root)" and erf["reason"] == "xnnpack has no kernel for aten.erf"
    assert any(c.get("op") == "erf" for c in mapping["calls"])
    assert any("delegate" in c and any(n["name"] == "/conv/Conv" for n in c["delegate"]) for c in mapping["calls"])


class _StridedBias(nn.Module):
    """Attention scores plus a bias buffer stored as a permuted view (zoo Swin's deploy-mode bias is one)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("bias", torch.randn(1, 49, 49, 3).permute(0, 3, 1, 2))  # strides (.., 1, 147, 3)

    def forward(self, x):
        return (x + self.bias).softmax(-1)


def test_strided_constants_and_large_mean_layer_norm_match_pytorch():
    """Two ExecuTorch 1.5 numerics problems the target works around (docs/executorch.md): a strided constant
    is read as if contiguous, and the portable LayerNorm's variance loses precision at a large mean."""
    from edgekit.engines.executorch import ExecuTorchEngine
    from edgekit.targets.executorch.lower import lower, two_pass_layer_norm
    from edgekit.targets.torch_program import Flat, capture, contiguous_constants

    cases = [(_StridedBias(), torch.randn(9, 3, 49, 49)), (nn.LayerNorm(96), torch.randn(1, 64, 96) + 100.0)]
    for module, x in cases:
        model = Flat(module).eval()
        assert contiguous_constants(model) == (["model.bias"] if isinstance(module, _StridedBias) else [])
        exported, count = two_pass_layer_norm(capture(model, x, "test"))
        assert count == (1 if isinstance(module, nn.LayerNorm) else 0)
        program, _, _ = lower(exported, "xnnpack")
        got = ExecuTorchEngine(program.buffer, {}, 1).infer({"input0": x.numpy()})[0]
        want = model(x)[0].detach().numpy()
        # float32 rounding of 96 values around 100 bounds the LayerNorm (the one-pass kernel was off by 1.4e-2)
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_profile_maps_operators_to_modules(tiny_bundles):
    report = edgekit.profile([tiny_bundles["executorch"].path], threads=(1,), iterations=10, warmup=2,
                             layer_iters=5).data
    layers = report["results"][0]["runs"][0]["layers"]
    assert layers["profiler"] == "executorch etdump"
    modules = {r["module"] for r in layers["records"] if not r["module_inferred"]}
    assert "backbone.stem.0" in modules and "head" in modules  # XNNPACK's convolution and GEMM events
    assert "backbone.attn.norm" in modules  # the portable LayerNorm kernel, by its node
    assert layers["total_ms"] > 0


def test_litert_profile_maps_operators_to_modules(tiny_bundles):
    """LiteRT's own op profiler (its C API, in a process of its own), each XNNPACK row given the module of the
    .tflite op of its kind; the op map comes from the tensor names litert-torch writes."""
    report = edgekit.profile([tiny_bundles["litert"].path], threads=(1,), iterations=10, warmup=2,
                             layer_iters=5).data
    layers = report["results"][0]["runs"][0]["layers"]
    assert layers["profiler"] == "litert op profiler"
    modules = {r["module"] for r in layers["records"] if not r["module_inferred"]}
    assert {"backbone.attn.qkv", "backbone.attn.proj", "head"} <= modules
    assert {r["op_type"] for r in layers["records"]} >= {"Convolution", "Fully Connected", "Softmax"}


def test_fp16_bundles(tmp_path):
    """ExecuTorch computes in fp16 with LayerNorm and attention kept in float32; LiteRT stores float16 weights."""
    shape = "1x3x64x64"
    et = edgekit.export(SEG, "executorch", tmp_path / "et", precision="fp16", input_shape=shape).manifest
    assert et["parity"]["passed"], et["parity"]
    assert et["export"]["fp16_islands"] == {"backbone.attn": "softmax / linear-attention normaliser"}
    lt32 = edgekit.export(SEG, "litert", tmp_path / "lt32", input_shape=shape).manifest
    lt16 = edgekit.export(SEG, "litert", tmp_path / "lt16", precision="fp16", input_shape=shape).manifest
    assert lt16["parity"]["passed"], lt16["parity"]
    # float16 weights save 2 bytes per weight; on this tiny model the flatbuffer's own structure is most of the file
    weights = sum(p.numel() for p in _tiny_seg().parameters() if p.dim() > 1)
    assert lt32["files"][0]["bytes"] - lt16["files"][0]["bytes"] >= 0.75 * 2 * weights


def _tiny_seg():
    from tests.fixtures.tiny import tiny_segmenter

    return tiny_segmenter()


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="--delegate qnn needs Qualcomm's QNN SDK"):
        edgekit.export(TINY, "executorch", tmp_path / "q", target_options={"delegate": "qnn"})
    with pytest.raises(UsageError, match="fixed batch"):
        edgekit.export(TINY, "litert", tmp_path / "d", dynamic_batch=True)
    with pytest.raises(UsageError, match="applies to --target executorch"):
        edgekit.export(TINY, "litert", tmp_path / "o", target_options={"delegate": "xnnpack"})
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_missing_extra_names_the_pip_command(monkeypatch):
    import importlib.util

    from edgekit.config import Target
    from edgekit.targets import get_backend

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("executorch", "litert_torch")
                        else real(name, *a))
    assert get_backend(Target.EXECUTORCH).missing() == ("target executorch needs ExecuTorch: pip install "
                                                        "'edgekit[executorch]'")
    assert "pip install 'edgekit[litert]'" in get_backend(Target.LITERT).missing()


def test_vulkan_program_is_lowered_and_not_run_here(tmp_path):
    pytest.importorskip("executorch.backends.vulkan.partitioner.vulkan_partitioner")
    m = edgekit.export(TINY, "executorch", tmp_path / "v", target_options={"delegate": "vulkan"}).manifest
    assert m["parity"]["measured"] is False and "Vulkan" in m["parity"]["reason"]
    assert m["export"]["delegation"]["delegate"] == "vulkan" and m["export"]["delegation"]["nodes"]["delegated"] > 0
    with pytest.raises(UsageError, match="lowered for vulkan"):
        edgekit.runtime.load(tmp_path / "v")


def test_keep_fp_pattern_reaches_the_pt2e_annotation(tmp_path):
    """--keep-fp names modules the way ONNX node names do; the matching layers lose their annotation."""
    from edgekit.quant.options import QuantOptions
    from edgekit.quant.pt2e import find_islands
    from edgekit.targets.torch_program import Flat
    from tests.fixtures.tiny import tiny_classifier

    model = Flat(tiny_classifier()).eval()
    gm = torch.export.export(model, (torch.randn(1, 3, 64, 64),), strict=False).module()
    default = {i.reason for i in find_islands(gm, QuantOptions())}
    assert {"stem", "head", "layernorm", "softmax", "attention_matmul"} <= default
    user = [i for i in find_islands(gm, QuantOptions(keep_fp=("*/attn/proj/*",), default_islands=False))]
    assert [i.reason for i in user] == ["user"] and user[0].op_type == "Gemm"
    assert [i.op_type for i in find_islands(gm, QuantOptions(keep_fp=("op:Softmax",), default_islands=False))] \
        == ["Softmax"]


def test_pt2e_budget_loop_keeps_the_most_sensitive_blocks_in_float():
    """A budget int8 cannot meet (cosine 0.999999, no default islands): blocks are ranked by sensitivity and kept
    in float, most sensitive first, until it holds; the manifest entry lists the steps and the kept blocks."""
    from edgekit.calib import CalibrationSet
    from edgekit.config import Task
    from edgekit.quant.options import QuantOptions
    from edgekit.quant.pt2e import Pt2eJob, quantize_pt2e
    from edgekit.quant.scoring import Budget
    from edgekit.targets.executorch.backend import xnnpack_quantizer
    from edgekit.targets.torch_program import Flat
    from tests.fixtures.tiny import tiny_classifier

    torch.manual_seed(0)
    model = Flat(tiny_classifier()).eval()
    inputs = [np.random.default_rng(i).standard_normal((1, 3, 64, 64)).astype(np.float32) for i in range(4)]
    calib = CalibrationSet(inputs, [f"x{i}" for i in range(4)], "test", "0" * 64)
    job = Pt2eJob(calib, QuantOptions(default_islands=False), Budget(1.0, 0.999999), Task.CLASSIFICATION)
    result = quantize_pt2e(model, torch.from_numpy(inputs[0]), xnnpack_quantizer, job, "XNNPACK quantizer")
    budget = result.info["budget"]
    assert budget["steps"][0]["kept"] is None and budget["steps"][0]["cosine_min"] < 0.999999  # int8 alone misses
    assert budget["met"] and budget["kept_blocks"]  # met by keeping blocks in float
    assert set(budget["kept_blocks"]) <= {s.get("kept") for s in budget["steps"]}  # each kept block is a step
    assert "budget" in result.info["islands"]
    assert result.info["kept"]["cosine_min"] >= 0.999999
