"""CoreML target here (Linux): conversion, the baked-in preprocessing, program inspection, plain errors.

Predictions need CoreML itself: the one parity test carries the macos marker and skips elsewhere.
"""
from __future__ import annotations

import json
import platform

import numpy as np
import pytest
import torch

import edgekit
from edgekit.errors import EdgekitFailure, UsageError
from edgekit.targets.coreml.backend import CoreMlBackend, CoreMlOptions, coremltools
from edgekit.targets.coreml.convert import FRONTENDS, Deployed, convert, drop_aliases
from edgekit.targets.coreml.program import inspect_spec

TINY = "tests.fixtures.tiny:tiny_classifier"
SEG = "tests.fixtures.tiny:tiny_segmenter"
on_mac = platform.system() == "Darwin"


@pytest.fixture(scope="module")
def fp16_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("coreml") / "b"
    return out, edgekit.export(TINY, "coreml", out, precision="fp16").manifest


def test_bundle_manifest_and_program(fp16_bundle):
    path, m = fp16_bundle
    files = [f["path"] for f in m["files"]]
    assert files[0] == "model.mlpackage/Manifest.json"
    assert "model.mlpackage/Data/com.apple.CoreML/model.mlmodel" in files
    assert m["runtime"] == {"name": "coremltools", "version": coremltools().__version__, "format": "mlprogram",
                            "deployment_target": "iOS16", "compute_precision": "fp16"}
    assert m["inputs"] == [{"name": "image", "shape": [1, 3, 64, 64], "dtype": "uint8", "layout": "NCHW",
                            "kind": "image (RGB, 8-bit; scaled by 1/255 and normalised inside the model)"}]
    assert m["outputs"][0] == {"name": "logits", "shape": [1, 10], "dtype": "float32", "layout": "", "kind": "logits"}
    program = json.loads((path / "coreml.json").read_text())["program"]
    for op in ("conv", "linear", "layer_norm", "softmax", "matmul"):
        assert program["ops"].get(op, 0) >= 1, op
    assert program["max_rank"] == 5  # the tiny model's packed (3, B, heads, N, d) qkv
    assert program["compute_precision"] == {"FLOAT16": program["compute_precision"]["FLOAT16"]}
    assert m["export"]["frontend"] == "torch.jit.trace"


@pytest.mark.skipif(on_mac, reason="on macOS parity is measured")
def test_parity_not_measured_off_macos_and_loader_says_why(fp16_bundle):
    path, m = fp16_bundle
    assert m["parity"]["measured"] is False and "only on macOS" in m["parity"]["reason"]
    assert "cosine_min" not in m["parity"]  # never a made-up figure
    with pytest.raises(UsageError, match="CoreML bundles run on macOS and iOS only; this is Linux"):
        edgekit.runtime.load(path)


def test_spec_has_image_input_fp32_output_and_preprocessing_metadata(fp16_bundle):
    path, _ = fp16_bundle
    ct = coremltools()
    spec = ct.models.MLModel(str(path / "model.mlpackage"), skip_model_load=True).get_spec()
    (inp,) = spec.description.input
    assert inp.type.WhichOneof("Type") == "imageType"
    assert (inp.type.imageType.width, inp.type.imageType.height) == (64, 64)
    (out,) = spec.description.output
    assert out.type.multiArrayType.dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    meta = spec.description.metadata.userDefined
    assert json.loads(meta["edgekit.preprocess"])["mean"] == [0.485, 0.456, 0.406]
    assert meta["edgekit.output"] == "logits"


def test_per_class_labels_are_metadata_json(tmp_path):
    """Labels given one per class (a transformers config's id2label, --labels) are stored as a JSON list: the
    metadata map takes strings only (a tuple failed the build with 'bad argument type')."""
    labels = [f"class {i}" for i in range(10)]
    edgekit.export(TINY, "coreml", tmp_path / "b", labels=labels)
    spec = coremltools().models.MLModel(str(tmp_path / "b" / "model.mlpackage"), skip_model_load=True).get_spec()
    assert json.loads(spec.description.metadata.userDefined["edgekit.labels"]) == labels


def test_wrapper_bakes_in_exactly_the_bundle_preprocessing():
    from edgekit.preprocess import Preprocess

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    pre = Preprocess(size=(16, 16), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = model(torch.from_numpy(pre(image)))
        pixels = torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32) / 255)
        got = Deployed(model, pre.mean, pre.std)(pixels)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)  # fp32: only the order of two roundings differs


def test_segmentation_label_map_output(tmp_path):
    m = edgekit.export(SEG, "coreml", tmp_path / "b", input_shape="1x3x64x64",
                       target_options={"coreml_output": "labels"}).manifest
    assert m["outputs"][0] == {"name": "labels", "shape": [1, 16, 16], "dtype": "int32", "layout": "NHW",
                               "kind": "labels"}
    program = json.loads((tmp_path / "b" / "coreml.json").read_text())["program"]
    assert program["ops"].get("reduce_argmax") == 1
    with torch.no_grad():  # the label map is the argmax of the logits the wrapper computes
        model, x = edgekit.sources.load_source(SEG, input_shape=(1, 3, 64, 64)).model, torch.rand(1, 3, 64, 64)
        logits, labels = Deployed(model, (0.5,) * 3, (0.25,) * 3)(x), Deployed(model, (0.5,) * 3, (0.25,) * 3, True)(x)
    assert labels.dtype == torch.int32 and torch.equal(labels, logits.argmax(1).to(torch.int32))


@pytest.mark.parametrize("options,kwargs,message", [
    ({"coreml_output": "labels"}, {}, "for segmentation models"),
    ({"coreml_output": "boxes"}, {}, "choose labels or logits"),
    ({}, {"dynamic_batch": True}, "one image at a time"),
    ({"deployment_target": "iOS12"}, {}, "deployment target"),
])
def test_option_mistakes_are_one_line_usage_errors(tmp_path, options, kwargs, message):
    with pytest.raises(UsageError, match=message):
        edgekit.export(TINY, "coreml", tmp_path / "b", target_options=options, **kwargs)
    assert not (tmp_path / "b").exists()


def test_numpy_24_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(np, "__version__", "2.4.0")
    assert "pip install 'numpy<2.4'" in CoreMlBackend().missing()


class _Softmax(torch.nn.Module):
    def forward(self, x):
        return torch.softmax(x.flatten(1), -1)[:, :4]


def test_an_op_left_in_fp32_fails_loudly():
    ct = coremltools()
    source = torch.jit.trace(Deployed(_Softmax(), (0.5,) * 3, (0.2,) * 3).eval(), torch.rand(1, 3, 8, 8))
    keep_softmax_fp32 = ct.transform.FP16ComputePrecision(op_selector=lambda op: op.op_type != "softmax")
    mlmodel = ct.convert(source, inputs=[ct.TensorType(name="x", shape=(1, 3, 8, 8))], convert_to="mlprogram",
                         compute_precision=keep_softmax_fp32, minimum_deployment_target=ct.target.iOS16)
    report = inspect_spec(mlmodel.get_spec(), "fp16")
    assert [f.split()[0] for f in report.fallbacks] == ["softmax"]
    with pytest.raises(EdgekitFailure, match=r"1 op\(s\) fell back .*softmax"):
        report.check()


def test_rank_above_five_fails_loudly():
    class Rank6(torch.nn.Module):
        def forward(self, x):
            b, c, h, w = x.shape
            return (x.view(b, c, 2, h // 2, 2, w // 2) * 2.0).sum(2).flatten(1)

    with pytest.raises(EdgekitFailure, match=r"every frontend: torch.jit.trace: .*rank <= 5.*torch.export"):
        convert(Deployed(Rank6(), (0.5,) * 3, (0.2,) * 3), (1, 3, 8, 8), "logits", "fp32", "iOS16")
    # and a program that still carried one (coremltools refuses to write them) is caught by the inspection
    ct = coremltools()
    mlmodel = convert(Deployed(_Softmax(), (0.5,) * 3, (0.2,) * 3), (1, 3, 8, 8), "logits", "fp32", "iOS16").mlmodel
    spec = mlmodel.get_spec()
    fn = spec.mlProgram.functions["main"]
    op = next(o for o in fn.block_specializations[fn.opset].operations if o.type == "softmax")
    op.outputs[0].type.tensorType.rank = 6
    with pytest.raises(EdgekitFailure, match="rank > 5"):
        inspect_spec(spec, "fp32").check()
    assert isinstance(mlmodel, ct.models.MLModel)  # what convert returned before the rank was edited


def test_torch_export_frontend_when_tracing_fails_and_aliases_removed(monkeypatch):
    class WithAlias(torch.nn.Module):
        def forward(self, x):
            return torch.ops.aten.alias(x).mean((2, 3))

    program = torch.export.export(WithAlias(), (torch.rand(1, 3, 8, 8),)).run_decompositions({})
    assert drop_aliases(program) == 1 and drop_aliases(program) == 0

    def broken_trace(wrapped, example):
        raise RuntimeError("tracing refused")

    monkeypatch.setattr("edgekit.targets.coreml.convert.FRONTENDS", (("torch.jit.trace", broken_trace), FRONTENDS[1]))
    converted = convert(Deployed(WithAlias(), (0.5,) * 3, (0.2,) * 3), (1, 3, 8, 8), "logits", "fp32", "iOS16")
    assert converted.frontend == "torch.export"
    assert converted.notes[0].startswith("torch.jit.trace did not convert (torch.jit.trace: RuntimeError: tracing")
    assert "removed 1 aten.alias node(s)" in converted.notes[1]


def test_int8_weights(tmp_path):
    m = edgekit.export(TINY, "coreml", tmp_path / "b", precision="int8").manifest
    weights = m["export"]["program"]["weights"]
    assert any(k.startswith("constexpr_") for k in weights), weights


def test_options_parse():
    o = CoreMlOptions.parse({"coreml_output": "LABELS", "deployment_target": "ios17", "device": "CPU"})
    assert o.output.value == "labels" and o.deployment_target == "iOS17" and o.compute_units == "ALL"


@pytest.mark.macos
@pytest.mark.skipif(not on_mac, reason="CoreML predicts only on macOS")
def test_parity_on_macos(tmp_path):
    m = edgekit.export(TINY, "coreml", tmp_path / "b", precision="fp32").manifest
    assert m["parity"]["measured"] and m["parity"]["passed"], m["parity"]
    runner = edgekit.runtime.load(tmp_path / "b")
    assert runner.classify(np.zeros((64, 64, 3), np.uint8), k=1)


def test_int8_weights_on_a_zoo_model(tmp_path):
    """Regression: coremltools deduplicates equal small constants (a LayerNorm beta and a linear bias),
    so a None config on the LayerNorm conflicted with the linear's int8 config and conversion failed."""
    pytest.importorskip("coremltools")
    import edgekit

    bundle = edgekit.export("efficientvit_b0", "coreml", tmp_path / "b", precision="int8", input_shape="1x3x64x64",
                            calib_size=1)
    assert bundle.manifest["precision"] == "int8"
