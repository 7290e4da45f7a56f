"""`edgekit quantize` (bundle -> int8 bundle, --sensitivity) and `edgekit evaluate`, and their bad inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import edgekit
from tests.quant.conftest import CLS, SEG


@pytest.fixture(scope="module")
def fp32_bundles(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return {"cls": edgekit.export(CLS, "onnx", root / "cls").path}


@pytest.fixture(scope="module")
def seg_bundle(digits_seg, tmp_path_factory):
    return edgekit.export(SEG, "onnx", tmp_path_factory.mktemp("bundles") / "seg").path


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_quantize_command_then_evaluate(cli, digits, fp32_bundles, tmp_path):
    out = tmp_path / "int8"
    code, stdout, err = cli("quantize", fp32_bundles["cls"], "--calib", digits / "cls" / "calib", "--calib-size", "16",
                            "--method", "percentile", "--percentile", "99.9", "--keep-fp", "*/blocks.1/*",
                            "--out", out, "--quiet", "--json")
    assert code == 0, err
    m = json.loads(stdout)
    q = m["quantization"]
    assert m["precision"] == "int8" and q["method"] == "percentile-99.9"
    assert q["keep_fp_patterns"] == ["*/blocks.1/*"] and all("/blocks.1/" in n for n in q["islands"]["user"]["nodes"])
    assert q["reference_bundle"] == str(fp32_bundles["cls"].resolve())
    code, stdout, err = cli("evaluate", out, "--data", digits / "cls" / "val", "--limit", "60", "--json")
    assert code == 0, err
    r = json.loads(stdout)
    assert r["metric"] == "top-1" and r["images"] == 60 and r["reference"].startswith("bundle ")
    # measured here (Intel Xeon, ORT 1.32): 88.3% for both, agreement 100% on the 60 images. One image is 1.7
    # points; int8 rounding may differ on another CPU's kernels (VNNI or not), so up to 2 images may change
    # their top-1 (drop <= 2/60) and up to 3 may disagree with fp32 (agreement >= 57/60)
    assert r["reference_value"] > 0.6 and abs(r["reference_value"] - r["value"]) <= 2 / 60 + 1e-9
    assert r["agreement"] >= 57 / 60 - 1e-9
    code, stdout, _ = cli("evaluate", out, "--data", digits / "cls" / "val", "--limit", "10")
    assert code == 0 and "evaluation on 10 labeled images" in stdout and "%" in stdout


def test_evaluate_segmentation(cli, digits_seg, seg_bundle):
    code, stdout, err = cli("evaluate", seg_bundle, "--data", digits_seg / "seg" / "val", "--limit", "8", "--json")
    assert code == 0, err
    r = json.loads(stdout)
    assert r["metric"] == "mIoU" and r["images"] == 8 and 0.0 < r["value"] <= 1.0
    # an fp32 bundle against its own PyTorch model: the same labels (up to fp32 rounding at ties)
    assert r["reference"].startswith("PyTorch fp32") and r["agreement"] > 0.999


def test_sensitivity_command(cli, digits, fp32_bundles):
    code, stdout, err = cli("quantize", fp32_bundles["cls"], "--sensitivity", "--calib", digits / "cls" / "calib",
                            "--calib-size", "8", "--method", "minmax", "--quiet", "--json")
    assert code == 0, err
    r = json.loads(stdout)
    keys = [(b["agreement"], b["cosine_mean"]) for b in r["blocks"]]
    assert len(keys) >= 4 and keys == sorted(keys)  # ranked, most sensitive first
    assert r["recipe"] == "edgekit-u8s8" and r["images"] == 8
    code, stdout, _ = cli("quantize", fp32_bundles["cls"], "--sensitivity", "--calib", digits / "cls" / "calib",
                          "--calib-size", "8", "--quiet")
    assert code == 0 and "sensitivity" in stdout and "rank" in stdout


@pytest.mark.parametrize("args,match", [
    (("--precision", "fp32"), "'fp32' is not one of 'int8', 'fp16', 'bf16'"),
    (("--method", "median"), "Invalid value for '--method'"),
    (("--keep-fp", "*/no_such_block/*"), "matches no node"),
    (("--max-drop", "-2"), "--max-drop"),
    (("--percentile", "20"), "--percentile"),
    (("--calib-size", "0"), "--calib-size must be positive"),
])
def test_quantize_bad_options(cli, digits, fp32_bundles, tmp_path, args, match):
    code, _, err = cli("quantize", fp32_bundles["cls"], "--calib", digits / "cls" / "calib", "--out", tmp_path / "q",
                       *args)
    assert code == 2 and match in err, err
    assert not (tmp_path / "q").exists()


def test_quantize_not_a_bundle(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = cli("quantize", tmp_path / "empty")
    assert code == 2 and "has no manifest.json" in _one_line(err)


def test_quantize_bundle_without_loadable_source(cli, fp32_bundles, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(fp32_bundles["cls"], bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["model"]["source"] = "no_such_pkg.models:net"
    (bad / "manifest.json").write_text(json.dumps(m))
    code, _, err = cli("quantize", bad, "--out", tmp_path / "q")
    assert code == 2 and "cannot import 'no_such_pkg.models'" in _one_line(err)


def test_evaluate_bad_data(cli, fp32_bundles, seg_bundle, tmp_path):
    code, _, err = cli("evaluate", fp32_bundles["cls"], "--data", tmp_path / "nope")
    assert code == 2 and "is not a directory" in _one_line(err)
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "flat" / "a.png")
    code, _, err = cli("evaluate", fp32_bundles["cls"], "--data", tmp_path / "flat")
    assert code == 2 and "one subfolder of images per class" in _one_line(err)
    code, _, err = cli("evaluate", seg_bundle, "--data", tmp_path / "flat")
    assert code == 2 and "must hold images/ and masks/" in _one_line(err)
    seg = tmp_path / "seg"
    (seg / "images").mkdir(parents=True)
    (seg / "masks").mkdir()
    Image.fromarray(np.zeros((96, 96, 3), np.uint8)).save(seg / "images" / "x.png")
    code, _, err = cli("evaluate", seg_bundle, "--data", seg)
    assert code == 2 and "has no mask" in _one_line(err)
    Image.fromarray(np.zeros((96, 96, 3), np.uint8)).save(seg / "masks" / "x.png")  # RGB, not a label map
    code, _, err = cli("evaluate", seg_bundle, "--data", seg)
    assert code == 2 and "single-channel label maps" in _one_line(err)
    Image.fromarray(np.full((96, 96), 40, np.uint8)).save(seg / "masks" / "x.png")  # label 40 of 11 classes
    code, _, err = cli("evaluate", seg_bundle, "--data", seg)
    assert code == 2 and "label 40 but the model has 11 classes" in _one_line(err)
    code, _, err = cli("evaluate", fp32_bundles["cls"], "--data", tmp_path, "--limit", "0")
    assert code == 2 and "--limit must be positive" in _one_line(err)


def test_quantize_reads_the_recorded_export_configuration(fp32_bundles, tmp_path):
    """What `edgekit quantize` exports again: the bundle's export_config with its own run's settings; a bundle
    written before export_config existed is re-created from the fields it has (only OpenVINO's device option)."""
    from pathlib import Path

    from edgekit.config import Precision, Target
    from edgekit.quant.bundle import recorded_config

    bundle = fp32_bundles["cls"]
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["export_config"]["target_options"] == {} and m["export_config"]["opset"] == 17
    assert not {"source", "target", "precision", "checkpoint", "source_options"} & set(m["export_config"])
    m["export_config"].update(opset=18, target_options={"mobile": True}, input_shape=[1, 3, 32, 32], threads=7)
    config = recorded_config(bundle, m, tmp_path / "q", Precision.INT8, threads=2)
    assert (config.source, config.target, config.precision, config.out) == (CLS, Target.ONNX, Precision.INT8,
                                                                           tmp_path / "q")
    assert (config.opset, config.target_options, config.input_shape) == (18, {"mobile": True}, (1, 3, 32, 32))
    assert (config.threads, config.calib, config.verify, config.force, config.rewrite) == (2, None, True, False, True)
    del m["export_config"]
    legacy = recorded_config(bundle, m, Path("q"), Precision.FP16)
    assert (legacy.source, legacy.opset, legacy.target_options, legacy.rewrite) == (CLS, 17, {}, True)
    assert legacy.input_shape is None and legacy.precision is Precision.FP16
