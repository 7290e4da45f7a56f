"""The Python bundle runtime: preprocessing, checks before running, clear refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edgekit
from edgekit.calib import bundled_images_dir, read_image
from edgekit.errors import UsageError


@pytest.fixture(scope="module")
def cls_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("rt") / "cls"
    edgekit.export("tests.fixtures.tiny:tiny_classifier", "openvino", out)
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_runs_image_with_bundle_preprocessing(cls_bundle):
    from tests.fixtures.tiny import tiny_classifier

    runner = edgekit.runtime.load(cls_bundle)
    image = read_image(bundled_images_dir() / "coffee.png")  # 400x600, resized by the bundle's preprocessing
    out = runner(image)
    assert out.shape == (1, 10)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (x - mean[:, None, None]) / std[:, None, None]
    with torch.no_grad():
        ref = tiny_classifier().eval()(x).numpy()
    # PIL's bilinear resize vs torch's antialiased bilinear differ by ~1/255 per pixel: compare loosely
    cos = float((out * ref).sum() / np.linalg.norm(out) / np.linalg.norm(ref))
    assert cos > 0.999
    top = runner.classify(image, k=3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1] and top[0][0] == int(out.argmax())


def test_segmentation_label_map(tmp_path):
    edgekit.export("tests.fixtures.tiny:tiny_segmenter", "onnx", tmp_path / "seg", input_shape="1x3x64x64")
    runner = edgekit.runtime.load(tmp_path / "seg")
    labels = runner.segment(read_image(bundled_images_dir() / "astronaut.png"))
    assert labels.shape == (16, 16) and labels.dtype == np.uint8 and labels.max() < 5


def test_tampered_file_is_refused(cls_bundle, tmp_path):
    b = _copy(cls_bundle, tmp_path / "b")
    with open(b / "model.bin", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(UsageError, match="model.bin was modified"):
        edgekit.runtime.load(b)


def test_missing_file_is_refused(cls_bundle, tmp_path):
    b = _copy(cls_bundle, tmp_path / "b")
    (b / "model.xml").unlink()
    with pytest.raises(UsageError, match="model.xml is missing"):
        edgekit.runtime.load(b)


def test_newer_schema_is_refused(cls_bundle, tmp_path):
    b = _copy(cls_bundle, tmp_path / "b")
    m = json.loads((b / "manifest.json").read_text())
    m["schema_version"] = "2.0"
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UsageError, match="schema 2.0 is newer than this edgekit reads"):
        edgekit.runtime.load(b)


def test_runtime_older_than_build_is_refused(cls_bundle, tmp_path):
    b = _copy(cls_bundle, tmp_path / "b")
    m = json.loads((b / "manifest.json").read_text())
    m["runtime"]["version"] = "2099.1.0"
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UsageError, match="built with openvino 2099.1.0 but .* is installed; upgrade openvino"):
        edgekit.runtime.load(b)


def test_not_a_bundle(tmp_path):
    with pytest.raises(UsageError, match="has no manifest.json"):
        edgekit.runtime.load(tmp_path)


def test_inspect_cli_flags_tampering(cli, cls_bundle, tmp_path):
    b = _copy(cls_bundle, tmp_path / "b")
    (b / "model.xml").write_text((b / "model.xml").read_text().replace("input", "inpux", 1))
    code, out, err = cli("inspect", b)
    assert code == 2 and "model.xml was modified" in err
