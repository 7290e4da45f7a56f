"""End-to-end export: every source kind, both targets, both precisions, the parity gate."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edgekit
from edgekit.calib import bundled_images_dir, read_image
from edgekit.errors import ParityError

TINY = "tests.fixtures.tiny:tiny_classifier"


def _files(path):
    return sorted(p.name for p in path.iterdir())


@pytest.mark.parametrize("target,precision", [("onnx", "fp32"), ("onnx", "fp16"), ("openvino", "fp32"),
                                              ("openvino", "fp16"), ("openvino", "bf16")])
def test_factory_source_each_target_and_precision(tmp_path, target, precision):
    bundle = edgekit.export(TINY, target, tmp_path / "b", precision=precision)
    m = bundle.manifest
    assert m["target"] == target and m["precision"] == precision
    assert m["parity"]["measured"] and m["parity"]["passed"], m["parity"]
    assert m["parity"]["images"] == 6  # the six bundled photographs
    # the default tolerances (Tolerance.default): fp32 cosine >= 0.99999, fp16/bf16 >= 0.999
    assert m["parity"]["tolerance"]["cosine"] == (0.99999 if precision == "fp32" else 0.999)
    assert m["parity"]["cosine_min"] >= m["parity"]["tolerance"]["cosine"]
    expected = {"onnx": ["manifest.json", "model.onnx"], "openvino": ["manifest.json", "model.bin", "model.xml"]}
    assert _files(tmp_path / "b") == expected[target]
    assert sorted(f["path"] for f in m["files"]) == [f for f in expected[target] if f != "manifest.json"]
    assert m["inputs"][0]["shape"] == [1, 3, 64, 64] and m["outputs"][0]["shape"] == [1, 10]
    assert m["export"]["opset"] == 17 and m["export"]["ir_version"] <= 13
    if target == "openvino":  # never the CPU's silent bf16 default
        assert m["runtime_options"]["inference_precision"] == {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}[precision]


def test_openvino_fp32_is_not_bf16(tmp_path):
    """The fp32 OpenVINO bundle matches PyTorch to fp32 accuracy, which the CPU's bf16 default would not."""
    bundle = edgekit.export(TINY, "openvino", tmp_path / "b")
    assert bundle.manifest["parity"]["max_abs_rel"] < 1e-4


def test_zoo_source_classification_and_segmentation(tmp_path):
    cls = edgekit.export("efficientvit_b0", "onnx", tmp_path / "cls")
    assert cls.manifest["model"]["task"] == "classification" and cls.parity["passed"]
    assert cls.manifest["preprocess"]["size"] == [224, 224]
    seg = edgekit.export("efficientvit_b0_seg", "openvino", tmp_path / "seg", input_shape="1x3x256x256")
    m = seg.manifest
    assert m["model"]["task"] == "segmentation" and m["parity"]["agreement_kind"] == "per-pixel label"
    assert m["parity"]["passed"], m["parity"]
    assert m["outputs"][0]["shape"][1] == m["model"]["num_classes"]


def test_timm_source(tmp_path):
    bundle = edgekit.export("timm:efficientvit_b0", "onnx", tmp_path / "b", input_shape="1x3x160x160")
    assert bundle.manifest["model"]["source"] == "timm:efficientvit_b0"
    assert bundle.manifest["inputs"][0]["shape"] == [1, 3, 160, 160] and bundle.parity["passed"]
    import sys

    assert "torchvision" not in sys.modules  # the stand-in was scoped to timm's import


def test_segmentation_factory_with_input_shape(tmp_path):
    bundle = edgekit.export("tests.fixtures.tiny:tiny_segmenter", "onnx", tmp_path / "b", input_shape="1x3x64x64")
    m = bundle.manifest
    assert m["model"]["task"] == "segmentation" and m["model"]["num_classes"] == 5
    assert m["model"]["output_stride"] == 4 and m["parity"]["passed"]


@pytest.mark.parametrize("layout", ["state_dict", "training_checkpoint", "ddp_prefixed"])
def test_checkpoint_sources(tmp_path, layout):
    from tests.fixtures.tiny import tiny_classifier

    trained = tiny_classifier()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    sd = trained.state_dict()
    obj = {"state_dict": sd, "epoch": 3} if layout == "training_checkpoint" else sd
    if layout == "ddp_prefixed":
        obj = {f"module.{k}": v for k, v in sd.items()}
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    bundle = edgekit.export(TINY, "onnx", tmp_path / "b", checkpoint=path)
    assert bundle.manifest["model"]["checkpoint"]["sha256"]
    # the bundle computes the *trained* model: compare with it directly
    runner = edgekit.runtime.load(tmp_path / "b")
    image = read_image(bundled_images_dir() / "chelsea.png")
    with torch.no_grad():
        ref = trained.eval()(torch.from_numpy(runner.preprocess(image))).numpy()
    np.testing.assert_allclose(runner(image), ref, atol=1e-4)  # fp32 ORT vs eager: ~1e-6 observed


def test_exported_program_source(tmp_path):
    from tests.fixtures.tiny import tiny_classifier

    ep = torch.export.export(tiny_classifier().eval(), (torch.randn(1, 3, 64, 64),))
    torch.export.save(ep, tmp_path / "m.pt2")
    bundle = edgekit.export(str(tmp_path / "m.pt2"), "onnx", tmp_path / "b")
    assert bundle.manifest["inputs"][0]["shape"] == [1, 3, 64, 64] and bundle.parity["passed"]


def test_dynamic_batch(tmp_path):
    bundle = edgekit.export(TINY, "onnx", tmp_path / "b", dynamic_batch=True)
    assert bundle.manifest["inputs"][0]["shape"][0] == "batch"
    runner = edgekit.runtime.load(tmp_path / "b")
    assert runner.infer(np.zeros((3, 3, 64, 64), np.float32)).shape == (3, 10)


def test_parity_gate_fails_on_diverging_export(tmp_path):
    with pytest.raises(ParityError) as err:
        edgekit.export("tests.fixtures.tiny:diverging_classifier", "onnx", tmp_path / "b")
    assert "parity gate failed" in str(err.value) and "cosine" in str(err.value)
    assert err.value.report is not None and not err.value.report.passed
    # nothing half-written: no bundle, only the complete report of the failure the error names
    assert not (tmp_path / "b").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.parity-report.html", "b.parity-report.json"]
    assert f"report: {tmp_path / 'b'}.parity-report.json" in str(err.value)


def test_no_verify_writes_bundle_with_failing_figures(tmp_path):
    bundle = edgekit.export("tests.fixtures.tiny:diverging_classifier", "onnx", tmp_path / "b", verify=False)
    assert bundle.parity["measured"] and not bundle.parity["passed"]
    assert bundle.parity["gate"].startswith("disabled")


def test_cli_export_and_inspect(cli, tmp_path):
    code, out, err = cli("export", TINY, "--target", "openvino", "--out", tmp_path / "b", "--quiet")
    assert code == 0, err
    assert f"bundle: {tmp_path / 'b'}" in out
    code, out, _ = cli("inspect", tmp_path / "b", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["files_ok"] and info["target"] == "openvino"
    code, out, _ = cli("inspect", tmp_path / "b")
    assert code == 0 and "parity vs PyTorch" in out and "sha256 ok" in out


def test_cli_parity_failure_exit_code(cli, tmp_path):
    code, out, err = cli("export", "tests.fixtures.tiny:diverging_classifier", "--out", tmp_path / "b", "--quiet")
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("error: parity gate failed")
    assert "Traceback" not in err and not (tmp_path / "b").exists()


def test_cli_json_output(cli, tmp_path):
    code, out, _ = cli("export", TINY, "--out", tmp_path / "b", "--json")
    assert code == 0
    assert json.loads(out)["parity"]["passed"] is True


def test_swin_exports_to_openvino_at_default_size(tmp_path):
    """Regression: OpenVINO 2026.4's SDPA fusion threw on the zoo Swin's shifted windows at 224; the
    OpenVINO pipeline swaps in the WindowAttention plugin (inlined) to avoid it."""
    bundle = edgekit.export("swin_tiny", "openvino", tmp_path / "b", calib_size=2)
    assert bundle.parity["passed"], bundle.parity
    assert bundle.manifest["rewrites"]["swaps"].get("window_attention_plugin", 0) > 0
