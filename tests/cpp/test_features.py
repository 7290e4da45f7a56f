"""A features bundle (three named feature maps) through the C++ runtime, against the Python runtime: every
output by name and in the manifest's order, the worked example's head (feature-head) against numpy, and
the refusals (options a features bundle has no use for, names the bundle or its model lacks)."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

import edgekit
from edgekit.calib import bundled_images_dir, read_image
from edgekit.errors import UsageError
from tests.cpp.test_edgekit_run import PNGS, assert_within_bundle_tolerance, run_cpp

# the first run builds the C++ runtime with CMake (~1 min on 2 cores), cached per source version
pytestmark = pytest.mark.slow

# tests.fixtures.tiny:tiny_backbone at 64x64: (name, shape, stride)
MAPS = [("stage1", (1, 16, 16, 16), 4), ("stage2", (1, 32, 8, 8), 8), ("stage3", (1, 64, 4, 4), 16)]
NAMES = [name for name, _, _ in MAPS]


def manifest_of(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def edited_copy(bundle, dst, edit):
    """A copy of `bundle` whose manifest `edit` changed (the manifest is not among the sha256-checked files)."""
    shutil.copytree(bundle, dst)
    m = manifest_of(dst)
    edit(m)
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def cpp_outputs(cpp, bundle, image, tmp_path):
    """edgekit-run --json --raw: the result, the input tensor it ran and {name: output} in its order."""
    dump = tmp_path / "input.f32"
    res = json.loads(run_cpp(cpp, bundle, image, "--json", "--raw", "--dump-input", dump).stdout)
    x = np.fromfile(dump, np.float32).reshape(res["input_shape"])
    outs = {o["name"]: np.asarray(o["data"], np.float32).reshape(o["shape"]) for o in res["outputs"]}
    assert len(outs) == len(res["outputs"])  # no name twice
    return res, x, outs


@pytest.mark.parametrize("name", PNGS)
def test_every_output_by_name_matches_python(cpp, features_bundle, tmp_path, name):
    path = bundled_images_dir() / name
    runner = edgekit.runtime.load(features_bundle)
    manifest = manifest_of(features_bundle)
    res, x, outs = cpp_outputs(cpp, features_bundle, path, tmp_path)
    assert np.array_equal(x, runner.preprocess(read_image(path)))
    ref = runner.outputs(x)
    # the manifest's names, in its order, in both runtimes
    assert [o["name"] for o in res["outputs"]] == [o["name"] for o in manifest["outputs"]] == list(ref) == NAMES
    for (want, shape, stride), got, spec in zip(MAPS, res["outputs"], manifest["outputs"]):
        assert outs[want].shape == ref[want].shape == shape
        assert (got["kind"], got["stride"], got["channels"]) == (spec["kind"], spec["stride"], spec["channels"]) \
            == ("map", stride, shape[1])
        assert_within_bundle_tolerance(outs[want], ref[want], manifest)
        assert got["min"] == pytest.approx(float(outs[want].min())) and got["max"] == pytest.approx(float(outs[want].max()))
    # "output" is still the first output, for scripts written for single-output bundles
    assert np.array_equal(np.asarray(res["output"]["data"], np.float32).reshape(res["output"]["shape"]), outs["stage1"])


def test_outputs_follow_the_manifest_names_not_the_model_order(cpp, features_bundle, tmp_path):
    """A manifest listing the model's outputs in another order gets each output under its own name."""
    path = bundled_images_dir() / PNGS[0]
    reversed_bundle = edited_copy(features_bundle, tmp_path / "reversed", lambda m: m["outputs"].reverse())
    _, _, straight = cpp_outputs(cpp, features_bundle, path, tmp_path)
    res, _, crossed = cpp_outputs(cpp, reversed_bundle, path, tmp_path)
    assert [o["name"] for o in res["outputs"]] == NAMES[::-1]
    for name, shape, _ in MAPS:
        assert crossed[name].shape == straight[name].shape == shape
        span = float(straight[name].max() - straight[name].min())
        np.testing.assert_allclose(crossed[name], straight[name], rtol=0, atol=1e-6 * span)


NAME_REFUSALS = {  # manifest outputs[i].name := name -> what edgekit-run says
    "a name the model lacks": (1, "stage9", "model.xml has no output named 'stage9' (its outputs: stage1, stage2, stage3)"),
    "a name listed twice": (2, "stage1", "the manifest lists the output 'stage1' twice (outputs[0] and outputs[2])"),
}


@pytest.mark.parametrize("case", list(NAME_REFUSALS))
def test_manifest_output_names_that_do_not_match_the_model_are_refused(cpp, features_bundle, tmp_path, case):
    index, name, words = NAME_REFUSALS[case]

    def rename(m):
        m["outputs"][index]["name"] = name

    b = edited_copy(features_bundle, tmp_path / "b", rename)
    done = run_cpp(cpp, b, bundled_images_dir() / PNGS[0], check=False)
    assert done.returncode == 2
    assert words in done.stderr
    assert done.stderr.count("\n") == 1  # one plain line, no trace


@pytest.mark.parametrize(("field", "value"), [("kind", "heatmap"), ("stride", 0), ("channels", "16")])
def test_a_broken_output_description_is_refused_by_both_readers(cpp, features_bundle, tmp_path, field, value):
    def edit(m):
        m["outputs"][1][field] = value

    b = edited_copy(features_bundle, tmp_path / "b", edit)
    done = run_cpp(cpp, b, "--check", check=False)
    assert done.returncode == 2 and f"at outputs[1].{field}: " in done.stderr
    with pytest.raises(UsageError, match=rf"at outputs\[1\]\.{field}: "):
        edgekit.runtime.load(b)


def test_human_output_has_one_line_per_output(cpp, features_bundle):
    out = run_cpp(cpp, features_bundle, bundled_images_dir() / PNGS[1]).stdout
    rows = [ln.split() for ln in out.splitlines() if ln.split()[:1] and ln.split()[0] in NAMES]
    assert [r[:4] for r in rows] == [[name, "x".join(map(str, shape)), "map", str(stride)] for name, shape, stride in MAPS]
    assert "rank" not in out and "label map" not in out


@pytest.mark.parametrize("option", [["--top", "3"], ["--out", "labels.png"]])
def test_top_and_out_are_usage_errors_on_a_features_bundle(cpp, features_bundle, tmp_path, option):
    done = subprocess.run([str(cpp.edgekit_run), str(features_bundle), str(bundled_images_dir() / PNGS[0]), *option],
                          capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"{option[0]} is for classification and segmentation bundles" in done.stderr
    assert "features bundle (outputs: stage1, stage2, stage3)" in done.stderr
    assert not (tmp_path / "labels.png").exists() and done.stdout == ""


def write_head(path, rng, classes, channels):
    """The head file feature-head reads: per map K x C weights then K biases, little-endian float32."""
    head = [(rng.standard_normal((classes, c)).astype(np.float32) / np.float32(np.sqrt(c)),
             (0.05 * rng.standard_normal(classes)).astype(np.float32)) for c in channels]
    np.concatenate([np.concatenate([w.ravel(), b]) for w, b in head]).astype("<f4").tofile(path)
    return head


def numpy_head(maps, head):
    """feature-head's head in numpy (float64): per map a 1x1 convolution, nearest-upsampled to the finest map, summed."""
    height, width = max((m.shape[2], m.shape[3]) for m in maps)
    scores = 0.0
    for m, (w, b) in zip(maps, head):
        s = np.einsum("kc,chw->khw", w.astype(np.float64), m[0].astype(np.float64)) + b[:, None, None]
        rows, cols = np.arange(height) * m.shape[2] // height, np.arange(width) * m.shape[3] // width
        scores = scores + s[:, rows][:, :, cols]
    return scores


@pytest.mark.parametrize("maps", [NAMES, ["stage3", "stage1"]])
def test_feature_head_matches_numpy_on_the_python_maps(cpp, features_bundle, tmp_path, maps):
    path = bundled_images_dir() / "chelsea.png"
    runner = edgekit.runtime.load(features_bundle)
    ref = runner.outputs(runner.preprocess(read_image(path)))
    classes = 6
    head = write_head(tmp_path / "head.f32", np.random.default_rng(7), classes, [ref[n].shape[1] for n in maps])
    done = subprocess.run([str(cpp.feature_head), str(features_bundle), str(path), str(tmp_path / "head.f32"),
                           "--classes", str(classes), "--maps", ",".join(maps)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    scores = numpy_head([ref[n] for n in maps], head)
    assert (res["height"], res["width"], res["classes"], res["maps"]) == (16, 16, classes, maps)  # stage1's size
    labels = np.asarray(res["labels"]).reshape(16, 16)
    top2 = np.sort(scores, axis=0)[-2:]
    decisive = (top2[1] - top2[0]) > 1e-4  # elsewhere runtime-level noise may flip the argmax
    assert decisive.mean() > 0.95
    assert np.array_equal(labels[decisive], scores.argmax(0)[decisive])
    assert len(np.unique(labels)) >= 3  # the head separates something: equal label maps are not trivially equal
    assert abs(res["scores_checksum"] - scores.sum()) <= 1e-4 * np.abs(scores).sum()


def test_feature_head_refuses_a_name_the_bundle_lacks(cpp, features_bundle, tmp_path):
    write_head(tmp_path / "head.f32", np.random.default_rng(0), 2, [16, 16])
    done = subprocess.run([str(cpp.feature_head), str(features_bundle), str(bundled_images_dir() / PNGS[0]),
                           str(tmp_path / "head.f32"), "--classes", "2", "--maps", "stage1,stage4"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == ("feature-head: error: the bundle has no output named 'stage4'; "
                                   "its outputs: stage1, stage2, stage3")


def test_feature_head_refuses_a_head_file_of_the_wrong_size(cpp, features_bundle, tmp_path):
    write_head(tmp_path / "head.f32", np.random.default_rng(0), 3, [16, 32, 64])  # 3 classes; asked for 4
    done = subprocess.run([str(cpp.feature_head), str(features_bundle), str(bundled_images_dir() / PNGS[0]),
                           str(tmp_path / "head.f32"), "--classes", "4"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert f"has {3 * (16 + 32 + 64 + 3) * 4} bytes; 4 classes on these maps need {4 * (16 + 32 + 64 + 3) * 4}" \
        in done.stderr
