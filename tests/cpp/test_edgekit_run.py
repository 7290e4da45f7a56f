"""The C++ example (built with CMake against the OpenVINO wheel) against the Python runtime, on
bundles exported in this session: same input tensor, outputs within the bundle's tolerance, same
refusals in the same words."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

import edgekit
from edgekit.calib import bundled_images_dir, read_image
from edgekit.errors import UsageError
from tests.cpp.build import executorch_cmake

# the first run builds the C++ runtime with CMake (~1 min on 2 cores), cached per source version
pytestmark = pytest.mark.slow

# PNGs decode to the same pixels in stb_image and PIL; JPEG decoders differ by a few levels (see docs)
PNGS = ["astronaut.png", "chelsea.png", "coffee.png"]


def run_cpp(cpp, *args, check=True):
    done = subprocess.run([str(cpp.edgekit_run), *map(str, args)], capture_output=True, text=True, timeout=120,
                          check=False)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def cpp_result(cpp, bundle, image, tmp_path, *extra):
    dump = tmp_path / "input.f32"
    res = json.loads(run_cpp(cpp, bundle, image, "--json", "--raw", "--dump-input", dump, *extra).stdout)
    x = np.fromfile(dump, np.float32).reshape(res["input_shape"])
    y = np.asarray(res["output"]["data"], np.float32).reshape(res["output"]["shape"])
    return res, x, y


def assert_within_bundle_tolerance(ours: np.ndarray, ref: np.ndarray, manifest: dict):
    tol = manifest["parity"]["tolerance"]
    cos = float((ours.ravel().astype(np.float64) @ ref.ravel()) / np.linalg.norm(ours) / np.linalg.norm(ref))
    assert cos >= tol["cosine"], cos
    if tol.get("max_abs_rel") is not None:
        assert np.abs(ours - ref).max() <= tol["max_abs_rel"] * float(ref.max() - ref.min())


@pytest.mark.parametrize("name", PNGS)
def test_classification_parity_with_python_runtime(cpp, zoo_bundle, tmp_path, name):
    path = bundled_images_dir() / name
    image = read_image(path)
    runner = edgekit.runtime.load(zoo_bundle)
    res, x, y = cpp_result(cpp, zoo_bundle, path, tmp_path)
    # PIL's bicubic resampling is reproduced in C++ to the byte, so the input tensors are identical
    assert np.array_equal(x, runner.preprocess(image))
    ref = runner(image)
    assert y.shape == ref.shape == (1, 1000)
    assert_within_bundle_tolerance(y, ref, runner.manifest)
    assert [t["index"] for t in res["top"]] == [i for i, _ in runner.classify(image, k=5)]
    np.testing.assert_allclose([t["probability"] for t in res["top"]], [p for _, p in runner.classify(image, k=5)],
                               rtol=1e-4)  # softmax of logits that agree to ~1e-6


def test_labels_from_the_manifest(cpp, tmp_path):
    """A bundle exported with --labels names its classes in both runtimes; one without labels prints none."""
    names = [f"digit {i}" for i in range(10)]
    (tmp_path / "labels.txt").write_text("\n".join(names) + "\n")
    bundle = tmp_path / "tiny-openvino"
    edgekit.export("tests.fixtures.tiny:tiny_classifier", "openvino", bundle, labels=tmp_path / "labels.txt",
                   calib_size=2)
    path = bundled_images_dir() / PNGS[0]
    runner = edgekit.runtime.load(bundle)
    assert runner.labels == names
    res, _, _ = cpp_result(cpp, bundle, path, tmp_path, "--top", "3")
    want = [(i, runner.label(i)) for i, _ in runner.classify(read_image(path), k=3)]
    assert [(t["index"], t["label"]) for t in res["top"]] == want
    human = run_cpp(cpp, bundle, path, "--top", "3").stdout
    assert all(label in human for _, label in want)


def test_segmentation_label_map_matches_python(cpp, seg_bundle, tmp_path):
    from PIL import Image

    path = bundled_images_dir() / "astronaut.png"
    image = read_image(path)
    runner = edgekit.runtime.load(seg_bundle)
    res, x, y = cpp_result(cpp, seg_bundle, path, tmp_path, "--out", tmp_path / "labels.png")
    assert np.array_equal(x, runner.preprocess(image))
    ref = runner(image)
    assert_within_bundle_tolerance(y, ref, runner.manifest)
    labels = np.asarray(res["label_map"]["data"]).reshape(res["label_map"]["height"], res["label_map"]["width"])
    expected = runner.segment(image)
    assert labels.shape == expected.shape == (16, 16)
    # a label may differ only where PyTorch-level noise can flip it: the top-2 scores nearly tie
    top2 = np.sort(ref[0], axis=0)[-2:]
    decisive = (top2[1] - top2[0]) > 1e-4 * float(ref.max() - ref.min())
    assert decisive.mean() > 0.9
    assert np.array_equal(labels[decisive], expected[decisive])
    png = np.asarray(Image.open(tmp_path / "labels.png").convert("RGB"))
    assert png.shape == (16, 16, 3)
    colours = {tuple(png[i, j]) for i, j in zip(*np.nonzero(labels == labels[0, 0]))}
    assert len(colours) == 1  # one colour per class
    assert len({tuple(c) for c in png.reshape(-1, 3)}) == len(np.unique(labels))


def test_check_mode_and_human_output(cpp, zoo_bundle):
    assert "is intact and can run here" in run_cpp(cpp, zoo_bundle, "--check").stdout
    out = run_cpp(cpp, zoo_bundle, bundled_images_dir() / "coffee.png", "--top", "3").stdout
    assert "rank  class  probability" in out and len([ln for ln in out.splitlines() if ln.strip()[:1].isdigit()]) == 3


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit_manifest(bundle, edit):
    m = json.loads((bundle / "manifest.json").read_text())
    edit(m)
    (bundle / "manifest.json").write_text(json.dumps(m))


def _tamper(b):
    with open(b / "model.bin", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02\x03")


def _newer_runtime(b):
    def edit(m):
        m["runtime"]["version"] = "2099.1.0"
    _edit_manifest(b, edit)


def _newer_schema(b):
    def edit(m):
        m["schema_version"] = "2.0"
    _edit_manifest(b, edit)


REFUSALS = {
    "tampered": (_tamper, "model.bin was modified (sha256 differs from the manifest)"),
    "missing": (lambda b: (b / "model.xml").unlink(), "model.xml is missing"),
    "newer schema": (_newer_schema, "schema 2.0 is newer than this edgekit"),
    "runtime too old": (_newer_runtime, "bundle was built with openvino 2099.1.0 but "),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_both_runtimes_refuse_with_the_same_words(cpp, zoo_bundle, tmp_path, case):
    damage, words = REFUSALS[case]
    b = _copy(zoo_bundle, tmp_path / "b")
    damage(b)
    done = run_cpp(cpp, b, bundled_images_dir() / "coffee.png", check=False)
    assert done.returncode == 2
    assert words in done.stderr and done.stderr.count("\n") == 1  # one plain line, no trace
    with pytest.raises(UsageError) as refused:
        edgekit.runtime.load(b)
    assert words in str(refused.value)
    if case == "runtime too old":
        assert "upgrade openvino to >= 2099.1" in done.stderr and "upgrade openvino to >= 2099.1" in str(refused.value)


def test_backend_not_compiled_in_is_said_plainly(cpp, zoo_bundle, tmp_path):
    b = _copy(zoo_bundle, tmp_path / "b")

    def edit(m):
        m["target"], m["runtime"] = "trt", {"name": "tensorrt", "version": "10.7.0"}
    _edit_manifest(b, edit)
    done = run_cpp(cpp, b, "--check", check=False)
    assert done.returncode == 2
    have = "openvino, executorch" if executorch_cmake() else "openvino"
    assert f"built without the trt backend (it has: {have})" in done.stderr


def test_bad_command_line_is_a_usage_error(cpp, zoo_bundle):
    done = run_cpp(cpp, zoo_bundle, check=False)
    assert done.returncode == 2 and "expected BUNDLE and IMAGE" in done.stderr
    done = run_cpp(cpp, zoo_bundle, bundled_images_dir() / "nope.png", check=False)
    assert done.returncode == 2 and "cannot read image" in done.stderr


@pytest.fixture(scope="module")
def envelope_bundle(tmp_path_factory):
    """The tiny segmenter (output stride 4) exported to OpenVINO for every size from 32x32 to 128x128 in steps of
    4, OPT 64x64."""
    out = tmp_path_factory.mktemp("cpp") / "tiny_segmenter-envelope"
    edgekit.export("tests.fixtures.tiny:tiny_segmenter", "openvino", out, shapes="1x3x32x32:1x3x64x64:1x3x128x128")
    return out


def _png(tmp_path, h, w):
    from PIL import Image

    path = tmp_path / f"img{h}x{w}.png"
    Image.fromarray(np.random.default_rng(h * w).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_keep_size_runs_the_image_at_its_own_size(cpp, envelope_bundle, tmp_path):
    """Both runtimes keep a 96x80 image's size inside the envelope (no resize) and agree; without --keep-size it
    is resized to the OPT size, as before."""
    path = _png(tmp_path, 96, 80)
    runner = edgekit.runtime.load(envelope_bundle, keep_size=True)
    res, x, y = cpp_result(cpp, envelope_bundle, path, tmp_path, "--keep-size")
    assert x.shape == (1, 3, 96, 80) and np.array_equal(x, runner.preprocess(read_image(path)))
    ref = runner(read_image(path))
    assert y.shape == ref.shape == (1, 5, 24, 20)
    assert_within_bundle_tolerance(y, ref, runner.manifest)
    _, x_opt, _ = cpp_result(cpp, envelope_bundle, path, tmp_path)
    assert x_opt.shape == (1, 3, 64, 64)


@pytest.mark.parametrize("size,words", [((200, 96), "input height 200 is outside the bundle's envelope 32..128"),
                                        ((66, 64), "input size 66x64 is not a multiple of 4, the model's size step; "
                                                   "the nearest inside is 64x64")])
def test_sizes_outside_the_envelope_are_refused_in_the_same_words(cpp, envelope_bundle, tmp_path, size, words):
    path = _png(tmp_path, *size)
    done = run_cpp(cpp, envelope_bundle, path, "--keep-size", check=False)
    assert done.returncode == 2 and words in done.stderr and done.stderr.count("\n") == 1, done.stderr
    runner = edgekit.runtime.load(envelope_bundle, keep_size=True)
    with pytest.raises(UsageError, match=words.replace(".", r"\.")):
        runner(read_image(path))
    # an already-preprocessed tensor of that size is refused before inference too
    plain = edgekit.runtime.load(envelope_bundle)
    with pytest.raises(UsageError, match=words.replace(".", r"\.")):
        plain.outputs(np.zeros((1, 3, *size), np.float32))


def test_keep_size_needs_an_envelope(cpp, seg_bundle, tmp_path):
    words = "takes one input size (64x64); export it with --shapes or --dynamic-hw"
    done = run_cpp(cpp, seg_bundle, _png(tmp_path, 64, 64), "--keep-size", check=False)
    assert done.returncode == 2 and words in done.stderr
    with pytest.raises(UsageError, match=r"takes one input size \(64x64\)"):
        edgekit.runtime.load(seg_bundle, keep_size=True)
