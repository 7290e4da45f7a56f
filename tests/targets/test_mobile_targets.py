"""ExecuTorch and LiteRT targets here: both run on this CPU (XNNPACK in the executorch wheel's runtime, LiteRT's
interpreter), so every bundle's parity is measured on the program itself; int8 (PT2E with edgekit's islands and
budget) is judged on the trained digits models against their fp32 bundles."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from torch import nn

import edgekit
from edgekit.errors import UsageError
from edgekit.models import _registry as reg

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
    # LayerNorm has no XNNPACK kernel in ExecuTorch 1.5: left on the portable kernels, with its module and reason
    rows = {r["op"]: r for r in report["portable"]}
    assert rows["aten.native_layer_norm"]["module"] == "backbone.attn.norm"
    assert "no kernel" in rows["aten.native_layer_norm"]["reason"]
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


def _top1(bundle, data):
    return edgekit.evaluate(bundle, data).to_dict()


@pytest.mark.slow
@pytest.mark.parametrize("target,source,kind", [("executorch", CLS_DIGITS, "cls"), ("litert", SEG_DIGITS, "seg")])
def test_int8_on_trained_digits_within_one_point(target, source, kind, digits_seg, tmp_path):
    """int8 through PT2E on the trained digits models: top-1 / mIoU on the labeled folder within 1 point of the
    fp32 bundle of the same target, and the islands and budget in the manifest."""
    calib, val = digits_seg / kind / "calib", digits_seg / kind / "val"
    fp32 = edgekit.export(source, target, tmp_path / "fp32", calib=calib)
    int8 = edgekit.export(source, target, tmp_path / "int8", precision="int8", calib=calib)
    q = int8.manifest["quantization"]
    assert q["method"] == "pt2e" and q["budget"]["met"]
    assert q["layers"]["int8"] > 0 and set(q["islands"]) >= {"stem", "head"}
    assert int8.manifest["parity"]["passed"], int8.manifest["parity"]
    a, b = _top1(fp32.path, val), _top1(int8.path, val)
    assert a["metric"] == b["metric"] == ("top-1" if kind == "cls" else "mIoU")
    assert b["value"] >= a["value"] - 0.01, (a, b)


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


ZOO = reg.list_models() if os.environ.get("EDGEKIT_FULL_ZOO") else ["efficientvit_b0_seg", "segformer_b0"]


def _shape(name: str) -> str:
    d = reg.get_cfg(name).size_divisor
    side = max(d, -(-64 // d) * d)
    return f"1x3x{side}x{side}"


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ZOO)
def test_zoo_fp32(name, target, tmp_path):
    m = edgekit.export(name, target, tmp_path / "b", input_shape=_shape(name)).manifest
    assert m["parity"]["measured"] and m["parity"]["passed"], m["parity"]
