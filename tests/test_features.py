"""The features task: backbones as backbones (feature maps, tokens, embeddings; one or several named outputs)
through export, the parity gate per output, int8, the Python runtime, evaluate, and the bad-input refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edgekit
from edgekit.calib import bundled_images_dir, read_image
from edgekit.config import Precision, Task, Tolerance
from edgekit.errors import UsageError
from edgekit.stages.parity import run_parity

def test_a_dict_of_maps_runs_by_name_in_the_python_runtime(tmp_path):
    """A model returning a dict of maps: outputs named by its keys; the runtime returns them by name, equal to
    PyTorch's on a real photograph within the fp32 tolerance."""
    from tests.fixtures.tiny import tiny_backbone

    bundle = edgekit.export("tests.fixtures.tiny:tiny_backbone", "openvino", tmp_path / "b")
    runner = edgekit.runtime.load(bundle.path)
    image = read_image(bundled_images_dir() / "coffee.png")
    got = runner(image)
    assert runner.task is Task.FEATURES and list(got) == runner.output_names == ["stage1", "stage2", "stage3"]
    with torch.no_grad():
        want = tiny_backbone().eval()(torch.from_numpy(runner.preprocess(image)))
    for name in got:
        ref = want[name].numpy()
        assert got[name].shape == ref.shape
        assert np.abs(got[name] - ref).max() <= 1e-3 * np.ptp(ref), name
    assert runner.features(image).keys() == got.keys()
    with pytest.raises(UsageError, match="outputs features .*classify\\(\\) needs a classification bundle"):
        runner.classify(image)


def test_timm_model_without_classifier_exports_its_embedding(cli, tmp_path):
    """timm:eva02_tiny_patch14_224 has num_classes=0: its pooled embedding is the output, gated like any other."""
    code, out, err = cli("export", "timm:eva02_tiny_patch14_224", "--out", tmp_path / "b", "--json")
    assert code == 0, err
    m = json.loads(out)
    assert m["model"]["task"] == "features" and m["model"]["num_classes"] == 0
    assert m["outputs"] == [{"name": "embedding", "shape": [1, 192], "dtype": "float32", "layout": "NC",
                             "kind": "embedding", "channels": 192}]
    assert m["parity"]["passed"] and m["parity"]["cosine_min"] >= 0.99999


def _tiny_transformers(root):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], image_size=64,
                                      out_features=["stage2", "stage3", "stage4"])
    transformers.ConvNextBackbone(cfg).eval().save_pretrained(root / "convnext-backbone")
    cfg = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    image_size=56, patch_size=14)
    transformers.Dinov2Model(cfg).eval().save_pretrained(root / "dinov2-base")


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_transformers_backbone_and_base_model(tmp_path, target):
    """A *Backbone directory gives its out_features maps; a base *Model its last_hidden_state and pooler_output."""
    _tiny_transformers(tmp_path)
    backbone = edgekit.export(str(tmp_path / "convnext-backbone"), target, tmp_path / "bb")
    assert [(o["name"], o["kind"], o["stride"], o["channels"]) for o in backbone.manifest["outputs"]] == [
        ("stage2", "map", 8, 16), ("stage3", "map", 16, 24), ("stage4", "map", 32, 32)]
    base = edgekit.export(str(tmp_path / "dinov2-base"), target, tmp_path / "base")
    assert [(o["name"], o["kind"], o["shape"]) for o in base.manifest["outputs"]] == [
        ("last_hidden_state", "tokens", [1, 17, 32]), ("pooler_output", "embedding", [1, 32])]
    for bundle in (backbone, base):
        assert bundle.parity["passed"] and len(bundle.parity["outputs"]) in (2, 3)
        assert bundle.manifest["model"]["origin"]["weights"].startswith("model directory")  # its own weights, loaded strictly


def test_int8_features_meets_a_cosine_budget(tmp_path):
    """int8 of a features model: the budget is cosine agreement with fp32 per output (--max-drop 1: mean cosine
    >= 0.99 on the worst output), met on calibration data and then on held-out photographs by the gate."""
    # ONNX Runtime only: the features path is the same on OpenVINO, whose recipe search (NNCF's and edgekit's
    # recipes, each scored) makes the same test take 30 s on 2 cores
    bundle = edgekit.export("tests.fixtures.tiny:tiny_backbone", "onnx", tmp_path / "q", precision="int8",
                            max_drop=1.0)
    budget = bundle.manifest["quantization"]["budget"]
    assert budget["met"] and budget["agreement_min"] == pytest.approx(0.99)
    parity = bundle.parity
    assert parity["passed"] and parity["agreement_kind"] == "cosine" and parity["set"]["disjoint_from_calibration"]
    assert set(parity["outputs"]) == {"stage1", "stage2", "stage3"}
    assert all(o["agreement"] >= 0.99 and o["cosine_min"] >= 0.99 for o in parity["outputs"].values())
    report = edgekit.evaluate(bundle.path, bundled_images_dir())
    assert report.task == "features" and set(report.outputs) == {"stage1", "stage2", "stage3"}
    assert report.reference.startswith("PyTorch fp32")
    assert all(o["cosine_min"] >= 0.99 for o in report.outputs.values())


def test_parity_names_the_output_that_diverges():
    """Each output is gated on its own: one bad output fails the gate with its name; the others' figures stay."""
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(1, 3, 4, 4)).astype(np.float32) for _ in range(3)]

    def ref(x):
        return [x.mean((2, 3)), x[:, :1].reshape(len(x), -1)]

    def off(x):
        a, b = ref(x)
        return [a, b[:, ::-1].copy()]  # the second output scrambled

    report = run_parity(ref, off, inputs, Task.FEATURES, Tolerance.default(Precision.FP32), names=("pooled", "map"))
    assert not report.passed and report.failures and all(f.startswith("map: ") for f in report.failures)
    assert report.outputs["pooled"]["cosine_min"] == pytest.approx(1.0)
    assert report.outputs["map"]["cosine_min"] < 0.9 and report.cosine_min == report.outputs["map"]["cosine_min"]


def test_a_degenerate_output_among_several_is_named():
    """One dead output (all zero) among good ones: the gate names it and says why, not a cosine on noise."""
    inputs = [np.random.default_rng(i).normal(size=(1, 3, 4, 4)).astype(np.float32) for i in range(2)]

    def ref(x):
        return [x.mean((2, 3)), np.zeros((len(x), 8), np.float32)]

    def near(x):
        a, b = ref(x)
        return [a, b + np.float32(1e-3)]

    report = run_parity(ref, near, inputs, Task.FEATURES, Tolerance.default(Precision.FP32), names=("good", "dead"))
    assert not report.passed and report.failures == ("dead: " + report.reference_problem.split("dead: ", 1)[1],)
    assert "numerically zero" in report.failures[0]
    same = run_parity(ref, ref, inputs, Task.FEATURES, Tolerance.default(Precision.FP32), names=("good", "dead"))
    assert same.passed and same.warnings and same.warnings[0].startswith("dead: ")


def test_trt_onnx_and_coreml_keep_every_output(tmp_path):
    """Structurally, where neither runs: the TensorRT-flavoured ONNX and the CoreML package carry all three maps by
    name (the TensorRT one is also gated through its ONNX Runtime stand-in)."""
    import onnx

    trt = edgekit.export("tests.fixtures.tiny:tiny_backbone", "trt", tmp_path / "trt",
                         target_options={"onnx_only": True})
    names = ["stage1", "stage2", "stage3"]
    assert [o.name for o in onnx.load(str(trt.path / "model.onnx")).graph.output] == names
    assert [o["name"] for o in trt.manifest["outputs"]] == names and trt.parity["passed"]
    ct = pytest.importorskip("coremltools")
    coreml = edgekit.export("tests.fixtures.tiny:tiny_backbone", "coreml", tmp_path / "coreml")
    spec = ct.utils.load_spec(str(coreml.path / "model.mlpackage"))
    assert [o.name for o in spec.description.output] == names
    assert [(o["name"], o["shape"]) for o in coreml.manifest["outputs"]] == [
        ("stage1", [1, 16, 16, 16]), ("stage2", [1, 32, 8, 8]), ("stage3", [1, 64, 4, 4])]
    assert coreml.manifest["runtime_options"]["outputs"] == names


@pytest.mark.parametrize("args, words", [
    (["efficientvit_b0", "--features", "1,4"], "--features 1,4: efficientvit_b0 has stages 0, 1, 2, 3; 4 is not one"),
    (["tests.fixtures.tiny:tiny_classifier", "--features", "1"], "--features needs a model with stages"),
    (["efficientvit_b0", "--features", "1,2", "--num-classes", "5"], "feature maps, which have no classes: drop --num-classes"),
    (["efficientvit_b0", "--features", "a,b"], "--features 'a,b': give stage indices separated by commas"),
    (["efficientvit_b0", "--features", "2,2"], "give distinct stage indices"),
    (["tests.fixtures.tiny:tiny_backbone", "--target", "coreml", "--coreml-output", "labels"],
     "--coreml-output labels is for segmentation models; this one is a features model"),
])
def test_bad_feature_requests_are_one_line_and_write_nothing(cli, tmp_path, args, words):
    out = tmp_path / "b"
    code, _, err = cli("export", *args, "--out", out)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1 and words in lines[0] and "Traceback" not in err, err
    assert not out.exists()


def test_timm_stage_maps_through_forward_intermediates(tmp_path):
    """--features on a timm model: its forward_intermediates at those indices, strides from the probe."""
    bundle = edgekit.export("timm:efficientvit_b0", "onnx", tmp_path / "b", features="1,2,3",
                            input_shape="1x3x128x128", calib_size=3)
    assert [(o["name"], o["stride"], o["channels"]) for o in bundle.manifest["outputs"]] == [
        ("stage1", 8, 32), ("stage2", 16, 64), ("stage3", 32, 128)]
    assert bundle.parity["passed"] and bundle.manifest["model"]["source_options"]["features"] == [1, 2, 3]


def test_quantize_and_profile_a_features_bundle(tmp_path):
    """`edgekit quantize` re-exports the features model from the manifest (its --features recorded) and keeps
    every output; `edgekit profile` times a run of all of them and maps layers back as for any bundle."""
    fp32 = edgekit.export("efficientvit_b0", "onnx", tmp_path / "fp32", features="2,3", input_shape="1x3x128x128",
                          calib_size=3)
    int8 = edgekit.quantize(fp32.path, tmp_path / "int8", max_drop=2.0)
    assert [o["name"] for o in int8.manifest["outputs"]] == ["stage2", "stage3"]
    assert int8.parity["passed"] and set(int8.parity["outputs"]) == {"stage2", "stage3"}
    assert int8.manifest["quantization"]["budget"]["agreement_min"] == pytest.approx(0.98)
    report = edgekit.profile(fp32.path, warmup=1, iterations=5, layer_iters=2)
    (result,) = report.data["results"]
    (run,) = result["runs"]
    assert result["bundle"]["task"] == "features"
    assert run["latency_ms"]["median"] > 0 and run["layers"]["records"] and run["layers"]["by_block"]


def test_a_transformers_backbone_given_as_a_module(tmp_path):
    """package.module:factory returning a transformers *Backbone: its out_features maps, by name."""
    pytest.importorskip("transformers")
    bundle = edgekit.export("tests.fixtures.tiny:hf_backbone", "onnx", tmp_path / "b", input_shape="1x3x64x64")
    assert [(o["name"], o["stride"], o["channels"]) for o in bundle.manifest["outputs"]] == [
        ("stage2", 8, 16), ("stage3", 16, 24), ("stage4", 32, 32)]
    assert bundle.parity["passed"]
