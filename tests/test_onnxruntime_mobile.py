"""`edgekit export --target onnx --mobile`: ONNX Runtime's .ort format and the reduced-operator
config, loaded and run by ONNX Runtime and matching the ordinary ONNX bundle."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

import edgekit
from edgekit.calib import bundled_images_dir, read_image
from edgekit.errors import UsageError
from edgekit.manifest import schema_problem
from edgekit.targets.onnxruntime.mobile import (OPS_CONFIG, ORT_FILE, RUNTIME_OPT_CONFIG, RUNTIME_OPT_FILE,
                                                open_runtime_opt, required_operators)

SOURCE = "tests.fixtures.tiny:tiny_classifier"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("mobile")
    mobile = edgekit.export(SOURCE, "onnx", root / "mobile", target_options={"mobile": True})
    plain = edgekit.export(SOURCE, "onnx", root / "plain")
    return mobile, plain


def test_bundle_holds_the_ort_file_and_operator_config(bundles):
    mobile, _ = bundles
    m = mobile.manifest
    assert [f["path"] for f in m["files"]] == [ORT_FILE, OPS_CONFIG, RUNTIME_OPT_FILE, RUNTIME_OPT_CONFIG]
    assert not (mobile.path / "model.onnx").exists()
    for name in (ORT_FILE, RUNTIME_OPT_FILE):
        assert (mobile.path / name).read_bytes()[4:8] == b"ORTM"  # the ORT flatbuffer's file identifier
    assert m["runtime_options"]["format"] == "ort" and m["runtime_options"]["target_platform"] == "arm"
    assert schema_problem(m) is None
    # the parity gate ran on the .ort file itself, against PyTorch, with the fp32 tolerance
    assert m["parity"]["passed"] and m["parity"]["gate"] == "enforced" and m["parity"]["cosine_min"] >= 0.99999
    fixed, replayed = (required_operators(mobile.path / c) for c in (OPS_CONFIG, RUNTIME_OPT_CONFIG))
    assert {"Conv", "LayerNormalization"} <= {op for names in fixed.values() for op in names}
    assert "Conv" in replayed["ai.onnx;11"]  # the Runtime-style model keeps plain ONNX Conv for NNAPI / XNNPACK
    assert "/tmp" not in (mobile.path / OPS_CONFIG).read_text() + (mobile.path / RUNTIME_OPT_CONFIG).read_text()


def test_ort_file_loads_in_onnxruntime_and_matches_the_onnx_bundle(bundles):
    mobile, plain = bundles
    session = ort.InferenceSession(str(mobile.path / ORT_FILE), providers=["CPUExecutionProvider"])
    replay = open_runtime_opt(mobile.path / RUNTIME_OPT_FILE)
    runner, reference = edgekit.runtime.load(mobile.path), edgekit.runtime.load(plain.path)
    tol = mobile.manifest["parity"]["tolerance"]
    for name in ("astronaut.png", "rocket.jpg"):
        image = read_image(bundled_images_dir() / name)
        x = runner.preprocess(image)
        direct = session.run(None, {session.get_inputs()[0].name: x})[0]
        ours, ref = runner(image), reference(image)
        np.testing.assert_array_equal(direct, ours)  # the runtime opens the same .ort file
        for out in (ours, replay.run(None, {replay.get_inputs()[0].name: x})[0]):
            cos = float((out.ravel() @ ref.ravel()) / np.linalg.norm(out) / np.linalg.norm(ref))
            assert cos >= tol["cosine"]
            assert np.abs(out - ref).max() <= tol["max_abs_rel"] * float(ref.max() - ref.min())


def test_tampered_ort_file_is_refused(bundles, tmp_path):
    import shutil

    b = shutil.copytree(bundles[0].path, tmp_path / "b")
    data = bytearray((b / ORT_FILE).read_bytes())
    data[-10] ^= 0xFF
    (b / ORT_FILE).write_bytes(bytes(data))
    with pytest.raises(UsageError, match="model.ort was modified"):
        edgekit.runtime.load(b)


def test_cli_flag_and_misuse(cli, tmp_path):
    code, out, err = cli("export", SOURCE, "--target", "onnx", "--mobile", "--out", tmp_path / "m", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["files"][0]["path"] == ORT_FILE
    code, _, err = cli("export", SOURCE, "--target", "openvino", "--mobile", "--out", tmp_path / "o")
    assert code == 2 and "--mobile applies to --target onnx, not openvino" in err


def test_quantize_keeps_the_mobile_format(bundles, tmp_path):
    """`edgekit quantize` exports again with every recorded target option: the fp16 bundle is a mobile one too."""
    mobile, _ = bundles
    half = edgekit.quantize(mobile.path, tmp_path / "fp16", precision="fp16")
    m = half.manifest
    assert m["precision"] == "fp16" and m["export_config"]["target_options"] == {"mobile": True}
    assert [f["path"] for f in m["files"]] == [ORT_FILE, OPS_CONFIG, RUNTIME_OPT_FILE, RUNTIME_OPT_CONFIG]
    assert m["runtime_options"]["format"] == "ort" and m["parity"]["passed"]
