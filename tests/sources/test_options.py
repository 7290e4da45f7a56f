"""--mean, --std, --resize, --labels, --num-classes: validated at the edge, applied by every consumer
(calibration and parity images, the Python runtime, a later `edgekit quantize`), recorded with their origin;
precedence flag > model files > zoo config > ImageNet default."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edgekit
from edgekit.calib import bundled_images_dir, read_image

TINY = "tests.fixtures.tiny:tiny_classifier"  # 10 classes, declares ImageNet statistics in its edgekit_cfg


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _labels(tmp_path, n=10, text=None):
    path = tmp_path / "labels.txt"
    path.write_text(text if text is not None else "\n".join(f"label {i}" for i in range(n)) + "\n")
    return path


def test_flags_reach_the_runtime_and_the_manifest(tmp_path):
    labels = _labels(tmp_path)
    bundle = edgekit.export(TINY, "onnx", tmp_path / "b", mean="0.5,0.4,0.3", std="0.2,0.25,0.3", resize="nearest",
                            labels=labels, calib_size=2)
    m = bundle.manifest
    assert m["preprocess"]["mean"] == [0.5, 0.4, 0.3] and m["preprocess"]["std"] == [0.2, 0.25, 0.3]
    assert m["preprocess"]["resize"] == "nearest"
    assert m["preprocess"]["origin"] == {"size": "model (edgekit_cfg)", "mean": "flag", "std": "flag", "resize": "flag"}
    assert m["model"]["labels"] == [f"label {i}" for i in range(10)]
    assert m["model"]["origin"]["labels"] == f"flag (--labels {labels})"
    assert m["model"]["source_options"]["mean"] == [0.5, 0.4, 0.3]

    # the runtime feeds the model exactly that: PIL nearest resize, then (x / 255 - mean) / std
    from PIL import Image

    from tests.fixtures.tiny import tiny_classifier

    image = read_image(bundled_images_dir() / "chelsea.png")
    runner = edgekit.runtime.load(tmp_path / "b")
    resized = np.asarray(Image.fromarray(image).resize((64, 64), Image.NEAREST)).astype(np.float32) * np.float32(1 / 255)
    mean, std = np.asarray([0.5, 0.4, 0.3], np.float32), np.asarray([0.2, 0.25, 0.3], np.float32)
    x = ((resized - mean) / std).transpose(2, 0, 1)[None]
    np.testing.assert_array_equal(runner.preprocess(image), x)
    with torch.no_grad():
        want = tiny_classifier().eval()(torch.from_numpy(x)).numpy()  # the factory is seeded: same weights
    np.testing.assert_allclose(runner(image), want, rtol=1e-4, atol=1e-5)
    assert runner.labels[3] == "label 3"


def test_parity_images_use_the_flags(tmp_path, monkeypatch):
    import edgekit.pipeline as pipeline

    seen = {}
    real = pipeline.load_image_sets

    def spy(source, preprocess, size=None, *a, **kw):
        seen["preprocess"] = preprocess
        return real(source, preprocess, size, *a, **kw)

    monkeypatch.setattr(pipeline, "load_image_sets", spy)
    edgekit.export(TINY, "onnx", tmp_path / "b", mean="0.1,0.2,0.3", resize="bicubic", calib_size=2)
    assert seen["preprocess"].mean == (0.1, 0.2, 0.3) and seen["preprocess"].resize == "bicubic"


def test_quantize_and_evaluate_re_create_the_same_model(tmp_path, cli):
    """A bundle exported with flags is quantized from the same model with the same preprocessing and labels."""
    labels = _labels(tmp_path)
    edgekit.export(TINY, "onnx", tmp_path / "fp32", std="0.3,0.3,0.3", labels=labels, calib_size=4)
    code, _, err = cli("quantize", tmp_path / "fp32", "--calib-size", "4", "--out", tmp_path / "int8", "--quiet")
    assert code == 0, err
    fp32 = json.loads((tmp_path / "fp32" / "manifest.json").read_text())
    int8 = json.loads((tmp_path / "int8" / "manifest.json").read_text())
    for key in ("mean", "std", "resize", "size", "origin"):
        assert int8["preprocess"][key] == fp32["preprocess"][key], key
    assert int8["model"]["labels"] == fp32["model"]["labels"] and int8["model"]["source_options"] == fp32["model"]["source_options"]


def test_precedence_zoo_and_default(tmp_path):
    zoo = edgekit.export("efficientvit_b0", "onnx", tmp_path / "zoo", input_shape="1x3x64x64", calib_size=1)
    assert zoo.manifest["preprocess"]["origin"]["mean"] == "zoo config"
    assert zoo.manifest["model"]["origin"]["labels"] == "zoo config" and zoo.manifest["model"]["labels"] == "imagenet"
    plain = edgekit.export("tests.fixtures.tiny:plain_classifier", "onnx", tmp_path / "plain",
                           input_shape="1x3x32x32", calib_size=1)
    assert plain.manifest["preprocess"]["origin"]["mean"] == "default (ImageNet)"
    assert plain.manifest["preprocess"]["mean"] == [0.485, 0.456, 0.406]


def test_num_classes_for_a_zoo_model(tmp_path):
    bundle = edgekit.export("efficientvit_b0", "onnx", tmp_path / "b", num_classes=3, input_shape="1x3x64x64",
                            calib_size=1)
    assert bundle.manifest["outputs"][0]["shape"] == [1, 3] and bundle.manifest["model"]["labels"] == ""


BAD = {
    "labels count": (lambda p: ("--labels", _labels(p, 7)), "has 7 labels but the model has 10 classes"),
    "labels empty line": (lambda p: ("--labels", _labels(p, text="a\n\nb\n")), "line 2 is empty"),
    "labels missing": (lambda p: ("--labels", p / "nope.txt"), "nope.txt does not exist"),
    "labels unreadable": (lambda p: ("--labels", _binary(p)), "cannot be read (UnicodeDecodeError)"),
    "labels empty": (lambda p: ("--labels", _labels(p, text="")), "is empty; give one label per line"),
    "mean count": (lambda p: ("--mean", "0.5,0.5"), "--mean '0.5,0.5' has 2 value(s); give three"),
    "mean not numbers": (lambda p: ("--mean", "a,b,c"), "expected three numbers R,G,B"),
    "mean 0-255": (lambda p: ("--mean", "123.7,116.3,103.5"), "values are on the 0-1 scale, as timm writes them; "
                                                             "123.7 looks like a 0-255 value: divide by 255"),
    "zero std": (lambda p: ("--std", "0.2,0,0.2"), "every std must be greater than 0"),
    "std 0-255": (lambda p: ("--std", "58.4,57.1,57.4"), "divide by 255"),
    "num classes contradicts": (lambda p: ("--num-classes", "4"), "--num-classes 4 contradicts the model: it has 10 classes"),
    "num classes zero": (lambda p: ("--num-classes", "0"), "--num-classes must be at least 1"),
    "pretrained elsewhere": (lambda p: ("--pretrained",), "--pretrained applies to timm:<name> sources"),
}


def _binary(p):
    path = p / "labels.bin"
    path.write_bytes(b"\xff\xfe\x00\x81" * 8)
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_bad_flag_is_one_line_exit_2_nothing_written(cli, tmp_path, case):
    make, words = BAD[case]
    args = make(tmp_path)
    before = set(tmp_path.iterdir())
    code, _, err = cli("export", TINY, "--out", tmp_path / "b", "--calib-size", "1", *args)
    line = _one_line(err)
    assert code == 2 and words in line, line
    assert set(tmp_path.iterdir()) == before
