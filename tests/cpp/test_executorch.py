"""The C++ runtime's ExecuTorch backend (built against the executorch wheel's prebuilt runtime) against the
Python runtime, on .pte bundles exported in this session: the same input tensor, every output within the
bundle's tolerance and in the manifest's order, int8 programs (quantized kernels linked), threads, and the
same refusals in the same words."""
from __future__ import annotations

import json

import numpy as np
import pytest

import edgekit
from edgekit.calib import bundled_images_dir, read_image
from edgekit.errors import UsageError
from tests.cpp.build import executorch_cmake
from tests.cpp.test_edgekit_run import _copy, _edit_manifest, assert_within_bundle_tolerance, cpp_result, run_cpp

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(executorch_cmake() is None,
                                 reason="the executorch wheel is not installed: pip install 'edgekit[executorch]'")]

IMAGE = bundled_images_dir() / "astronaut.png"


@pytest.fixture(scope="module")
def et_bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("cpp-et")
    return {
        "classifier": edgekit.export("tests.fixtures.tiny:tiny_classifier", "executorch", root / "cls").path,
        "backbone": edgekit.export("tests.fixtures.tiny:tiny_backbone", "executorch", root / "bb").path,
        "int8": edgekit.export("tests.fixtures.tiny:tiny_segmenter", "executorch", root / "q", precision="int8",
                               input_shape="1x3x64x64", calib_size=4).path,
        "envelope": edgekit.export("tests.fixtures.tiny:tiny_segmenter", "executorch", root / "env",
                                   shapes="1x3x32x32:1x3x64x64:1x3x128x128").path,
    }


@pytest.mark.parametrize("kind", ["classifier", "int8"])
def test_outputs_match_the_python_runtime(cpp, et_bundles, tmp_path, kind):
    bundle = et_bundles[kind]
    runner = edgekit.runtime.load(bundle)
    image = read_image(IMAGE)
    res, x, y = cpp_result(cpp, bundle, IMAGE, tmp_path)
    assert res["runtime"]["name"] == "executorch" and res["precision"] == runner.manifest["precision"]
    assert np.array_equal(x, runner.preprocess(image))
    ref = runner(image)
    assert y.shape == ref.shape
    # the same program in the same runtime build: only thread scheduling may differ
    assert_within_bundle_tolerance(y, ref, runner.manifest)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))


def test_every_output_in_the_manifest_order(cpp, et_bundles, tmp_path):
    """A three-output backbone, with the manifest's outputs listed in reverse: each C++ output is still the
    one of its name (runtime_options.outputs says the program's order)."""
    b = _copy(et_bundles["backbone"], tmp_path / "b")
    _edit_manifest(b, lambda m: m.__setitem__("outputs", m["outputs"][::-1]))
    runner = edgekit.runtime.load(b)
    ref = runner(read_image(IMAGE))
    res = json.loads(run_cpp(cpp, b, IMAGE, "--json", "--raw").stdout)
    names = [o["name"] for o in res["outputs"]]
    assert names == [o["name"] for o in runner.manifest["outputs"]] == list(ref) and len(names) == 3
    for o in res["outputs"]:
        ours = np.asarray(o["data"], np.float32).reshape(o["shape"])
        assert ours.shape == ref[o["name"]].shape
        np.testing.assert_allclose(ours, ref[o["name"]], rtol=1e-5, atol=1e-5 * float(np.abs(ref[o["name"]]).max()))


def test_threads_do_not_change_the_result(cpp, et_bundles, tmp_path):
    _, _, one = cpp_result(cpp, et_bundles["classifier"], IMAGE, tmp_path, "--threads", "1")
    _, _, two = cpp_result(cpp, et_bundles["classifier"], IMAGE, tmp_path, "--threads", "2")
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-6)


def test_runtime_is_quiet_on_stderr(cpp, et_bundles):
    """ExecuTorch logs its CPU probe at Info level on every first run; the backend keeps only errors."""
    done = run_cpp(cpp, et_bundles["classifier"], IMAGE, "--top", "1")
    assert done.stderr == ""


def _lowered_for_coreml(m):
    m["runtime_options"]["delegate"] = m["runtime"]["delegate"] = "coreml"


def _unknown_output(m):
    m["runtime_options"]["outputs"] = ["nope"]


REFUSALS = {
    "other delegate": (_lowered_for_coreml, "the program is lowered for coreml, which runs on Apple devices (CoreML: iOS 16"),
    "runtime too old": (lambda m: m["runtime"].__setitem__("version", "99.1.0"),
                        "bundle was built with executorch 99.1.0 but "),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_both_runtimes_refuse_with_the_same_words(cpp, et_bundles, tmp_path, case):
    edit, words = REFUSALS[case]
    b = _copy(et_bundles["classifier"], tmp_path / "b")
    _edit_manifest(b, edit)
    done = run_cpp(cpp, b, IMAGE, check=False)
    assert done.returncode == 2
    assert words in done.stderr and done.stderr.count("\n") == 1, done.stderr  # one plain line, no trace
    with pytest.raises(UsageError) as refused:
        edgekit.runtime.load(b)
    assert words in str(refused.value)


def test_manifest_that_does_not_match_the_program_is_refused(cpp, et_bundles, tmp_path):
    b = _copy(et_bundles["classifier"], tmp_path / "b")
    _edit_manifest(b, _unknown_output)
    done = run_cpp(cpp, b, IMAGE, check=False)
    assert done.returncode == 2
    assert "model.pte has no output named 'output'" in done.stderr and done.stderr.count("\n") == 1


def test_a_program_for_a_range_of_sizes_runs_each_image_at_its_own(cpp, et_bundles, tmp_path):
    """A .pte with dynamic height and width (a shape envelope): --keep-size feeds the image's own size, which the
    program's inputs resize to, and the outputs follow."""
    from tests.cpp.test_edgekit_run import _png

    path = _png(tmp_path, 96, 80)
    runner = edgekit.runtime.load(et_bundles["envelope"], keep_size=True)
    res, x, y = cpp_result(cpp, et_bundles["envelope"], path, tmp_path, "--keep-size")
    assert x.shape == (1, 3, 96, 80)
    ref = runner(read_image(path))
    assert y.shape == ref.shape == (1, 5, 24, 20)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))
