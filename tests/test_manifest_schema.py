"""One manifest schema for every reader: edgekit/manifest.schema.json (checked with jsonschema), the
Python runtime (edgekit.manifest.read_manifest) and the C++ runtime (edgekit-run --check) accept and
refuse the same manifests, and name the same field when they refuse."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

import edgekit
from edgekit.errors import UsageError
from edgekit.manifest import SCHEMA_FILE, SCHEMA_VERSION, read_manifest, schema_problem


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("schema") / "tiny-openvino"
    edgekit.export("tests.fixtures.tiny:tiny_classifier", "openvino", out)
    return out


@pytest.fixture(scope="module")
def cpp():
    from tests.cpp.build import build

    return build()


def _set(path: str, value):
    """A mutation that sets (or with value=DELETE removes) the field at a dotted path (a.b.0.c)."""
    def mutate(m):
        *parents, last = path.split(".")
        for p in parents:
            m = m[int(p)] if isinstance(m, list) else m[p]
        if value is DELETE:
            del m[last]
        else:
            m[int(last) if isinstance(m, list) else last] = value
    return mutate


DELETE = object()

# (mutation, what both readers' messages must contain)
REFUSED = {
    "no target": (_set("target", DELETE), "'target'"),
    "no inputs": (_set("inputs", DELETE), "'inputs'"),
    "no model": (_set("model", DELETE), "'model'"),
    "unknown target": (_set("target", "tflite"), "at target: "),
    "unknown precision": (_set("precision", "int4"), "at precision: "),
    "bad minor version": (_set("schema_version", "1.x"), "at schema_version: "),
    "edgekit_version not a string": (_set("edgekit_version", 3), "at edgekit_version: "),
    "unknown task": (_set("model.task", "detection"), "at model.task: "),
    "unknown output kind": (_set("outputs.0.kind", "heatmap"), "at outputs[0].kind: "),
    "zero output stride": (_set("outputs.0.stride", 0), "at outputs[0].stride: "),
    "output channels not an integer": (_set("outputs.0.channels", "16"), "at outputs[0].channels: "),
    "a label that is not a string": (_set("model.labels", ["cat", 3]), "at model.labels[1]: "),
    "runtime without version": (_set("runtime.version", DELETE), "at runtime: 'version' is a required property"),
    "runtime_options not an object": (_set("runtime_options", "CPU"), "at runtime_options: "),
    "no inputs listed": (_set("inputs", []), "at inputs: "),
    "zero input dimension": (_set("inputs.0.shape.1", 0), "at inputs[0].shape[1]: "),
    "no mean": (_set("preprocess.mean", DELETE), "at preprocess: 'mean' is a required property"),
    "two means": (_set("preprocess.mean", [0.5, 0.5]), "at preprocess.mean: "),
    "mean not numbers": (_set("preprocess.mean", [0.5, "b", 0.5]), "at preprocess.mean[1]: "),
    "zero std": (_set("preprocess.std.0", 0), "at preprocess.std[0]: "),
    "zero size": (_set("preprocess.size.0", 0), "at preprocess.size[0]: "),
    "unknown resize": (_set("preprocess.resize", "lanczos"), "at preprocess.resize: "),
    "lower-case channel order": (_set("preprocess.channel_order", "rgb"), "at preprocess.channel_order: "),
    "zero scale": (_set("preprocess.scale", 0), "at preprocess.scale: "),
    "no files": (_set("files", []), "at files: "),
    "sha256 not hex": (_set("files.0.sha256", "xyz"), "at files[0].sha256: "),
    "path leaves the bundle": (_set("files.0.path", "../../etc/passwd"), "at files[0].path: "),
    "absolute path": (_set("files.0.path", "/etc/passwd"), "at files[0].path: "),
    "negative size": (_set("files.0.bytes", -1), "at files[0].bytes: "),
    "newer major version": (_set("schema_version", "2.0"), "schema 2.0 is newer than this edgekit"),
    "no schema_version": (_set("schema_version", DELETE), "has no valid schema_version"),
}

ACCEPTED = {
    "as exported": lambda m: None,
    "newer minor version": _set("schema_version", "1.7"),
    "unknown fields": _set("future", {"anything": [1, 2]}),
    "dynamic batch": _set("inputs.0.shape.0", "batch"),
    "no labels": _set("model.labels", None),
    "labels listed": _set("model.labels", ["cat", "dog"]),
    "no byte counts": _set("files.0.bytes", DELETE),
}


def _write(bundle, tmp_path, mutate):
    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    mutate(m)
    (b / "manifest.json").write_text(json.dumps(m))
    return b, m


def _cpp_check(cpp, b):
    return subprocess.run([str(cpp.edgekit_run), str(b), "--check"], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow  # builds the C++ runtime on first use (tests/cpp/build.py)
def test_schema_version_is_one_source_of_truth(cpp):
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["x-schema-version"] == SCHEMA_VERSION == "1.2"
    out = subprocess.run([str(cpp.edgekit_run), "--version"], capture_output=True, text=True, check=True).stdout
    assert f"manifest schema {SCHEMA_VERSION};" in out


@pytest.mark.parametrize("case", list(REFUSED))
def test_python_refuses(bundle, tmp_path, case):
    mutate, words = REFUSED[case]
    b, m = _write(bundle, tmp_path, mutate)
    with pytest.raises(UsageError) as refused:
        read_manifest(b)
    assert words in str(refused.value)
    if "version" not in case:  # the schema itself, not only the reader, rejects it
        assert schema_problem(m) is not None


@pytest.mark.slow  # builds the C++ runtime on first use (tests/cpp/build.py)
@pytest.mark.parametrize("case", list(REFUSED))
def test_cpp_refuses_alike(cpp, bundle, tmp_path, case):
    mutate, words = REFUSED[case]
    b, _ = _write(bundle, tmp_path, mutate)
    done = _cpp_check(cpp, b)
    assert done.returncode == 2, done.stdout
    assert words in done.stderr and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.slow  # builds the C++ runtime on first use (tests/cpp/build.py)
@pytest.mark.parametrize("case", list(ACCEPTED))
def test_both_accept(cpp, bundle, tmp_path, case):
    b, m = _write(bundle, tmp_path, ACCEPTED[case])
    assert schema_problem(m) is None
    read_manifest(b)
    done = _cpp_check(cpp, b)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow  # builds the C++ runtime on first use (tests/cpp/build.py)
def test_not_json_and_not_an_object(cpp, bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    for text, words in (('{"schema_version": "1.0",', "is not valid JSON"), ("[1, 2]", "has no valid schema_version")):
        (b / "manifest.json").write_text(text)
        with pytest.raises(UsageError, match=words):
            read_manifest(b)
        done = _cpp_check(cpp, b)
        assert done.returncode == 2 and words in done.stderr


def test_every_target_writes_a_valid_manifest(bundle, tmp_path):
    """Bundles exported here follow the schema (the ONNX Runtime mobile bundle is checked in its own test)."""
    assert schema_problem(json.loads((bundle / "manifest.json").read_text())) is None
    onnx = edgekit.export("tests.fixtures.tiny:tiny_segmenter", "onnx", tmp_path / "seg", input_shape="1x3x64x64")
    assert schema_problem(copy.deepcopy(onnx.manifest)) is None


# A bundle written by an earlier edgekit (schema 1.0, before model.origin, model.source_options, labels as a list
# and export_config were recorded): the tiny classifier exported to ONNX Runtime at 64x64 at commit df616a5.
OLD_BUNDLE = Path(__file__).parent / "data" / "bundle-1.0-onnx"


def test_a_bundle_from_schema_1_0_reads_runs_and_matches_pytorch(tmp_path):
    import numpy as np
    import torch

    from edgekit.calib import bundled_images_dir, read_image
    from edgekit.manifest import Manifest
    from tests.fixtures.tiny import tiny_classifier

    bundle = tmp_path / "old"
    shutil.copytree(OLD_BUNDLE, bundle)
    written = json.loads((bundle / "manifest.json").read_text())
    manifest = read_manifest(bundle)
    assert isinstance(manifest, Manifest) and manifest == written  # read as it was written, nothing rewritten
    assert manifest.schema_version == "1.0" and manifest.export_config is None
    assert manifest.model.task == "classification" and manifest.model.num_classes == 10
    assert manifest.model.origin is None and manifest.model.source_options is None and manifest.model.labels == ""
    assert manifest.inputs[0].shape == [1, 3, 64, 64] and manifest.batch == 1
    assert manifest.file_paths == ["model.onnx"] and manifest.files[0].bytes == (bundle / "model.onnx").stat().st_size
    assert manifest.runtime.name == "onnxruntime" and manifest.runtime.to_dict() == written["runtime"]

    runner = edgekit.runtime.load(bundle)  # file hashes, schema, runtime version: all checked
    image = read_image(bundled_images_dir() / "astronaut.png")
    out = runner(image)
    with torch.no_grad():
        ref = tiny_classifier().eval()(torch.from_numpy(runner.preprocess(image))).numpy()
    runner.close()
    assert out.shape == (1, 10) and runner.labels is None
    # the fp32 parity tolerance the bundle was gated with (its manifest's parity.tolerance)
    tolerance = written["parity"]["tolerance"]
    assert np.abs(out - ref).max() <= tolerance["max_abs_rel"] * float(np.ptp(ref))
