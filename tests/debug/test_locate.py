"""The divergence locator: each failure signature is reproduced by a small model (tests/fixtures/diverge.py) and
must be located at the module that has it; a model without a problem must give no alarm."""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest

import edgekit
from edgekit.calib import load_image_sets
from edgekit.config import Precision
from edgekit.debug.locate import locate
from edgekit.errors import ParityError
from edgekit.stages.onnx_export import export_onnx, prepare_for_deploy
from edgekit.sources import load_source

from tests.helpers import INT8_SATURATES, needs_unsaturated_int8

RUNTIMES = ["onnxruntime", "openvino"]


def _fp32(name: str):
    src = load_source(f"tests.fixtures.diverge:{name}")
    proto = export_onnx(prepare_for_deploy(src.model), src.spec.input_shape).model
    return proto, load_image_sets(None, src.spec.preprocess, None).parity.inputs


def _plain_int8(proto: onnx.ModelProto, inputs: list[np.ndarray]) -> onnx.ModelProto:
    """Per-tensor min-max QDQ of every weighted layer, no islands, no budget: what a default quantizer gives."""
    from edgekit.quant import Method, QuantOptions
    from edgekit.quant.calibrate import calibrate
    from edgekit.quant.qdq import quantize_qdq

    ranges, _ = calibrate(proto, inputs, "test", QuantOptions(method=Method.MINMAX, cache=False))
    return quantize_qdq(proto, ranges, set())


def test_fp16_overflow_is_located_named_in_the_error_and_fixed(tmp_path):
    """Constants beyond 65504 in module `rescale`: the gate's error names that module, the --keep-fp pattern and
    the report it wrote; --auto-fix keeps the module in fp32 and the gate passes, the manifest saying so."""
    out = tmp_path / "b"
    with pytest.raises(ParityError) as failed:
        edgekit.export("tests.fixtures.diverge:overflowing", "onnx", out, precision="fp16")
    message = str(failed.value)
    assert "first diverging module: rescale" in message and "fp16 overflow" in message
    assert "--keep-fp '/rescale/*'" in message and f"report: {out}.parity-report.json" in message
    assert not out.exists()
    report = json.loads((tmp_path / "b.parity-report.json").read_text())
    assert report["layerwise"]["first_divergence"]["module"] == "rescale"
    assert report["layerwise"]["diagnosis"]["kind"] == "fp16_overflow"
    assert [t["module"] for t in report["layerwise"]["taps"]][:2] == ["stem", "block.0"]  # graph order
    assert all(t["cosine_min"] > 0.999 for t in report["layerwise"]["taps"][:2])  # before it: no alarm
    fixed = edgekit.export("tests.fixtures.diverge:overflowing", "onnx", out, precision="fp16", auto_fix=True)
    assert fixed.parity["passed"]
    assert fixed.manifest["auto_fix"] == [{"module": "rescale", "kind": "fp16_overflow",
                                           "cause": report["layerwise"]["diagnosis"]["cause"],
                                           "keep_fp": ["/rescale/*"]}]


def _straight_fp16(proto: onnx.ModelProto, keep: list[str]) -> onnx.ModelProto:
    """The fp16 graph as a straight cast of every constant gives it (TensorRT's and coremltools' fp16 builds:
    1e-9 becomes 0). ONNX Runtime's converter instead clamps tiny constants to fp16's smallest subnormal, which
    hides the signature: the clamped values are set back to the 0 a straight cast gives. ``keep``: nodes in fp32."""
    from onnx import numpy_helper

    from edgekit.targets.float16 import to_float16

    converted = to_float16(proto, keep_io_types=True, node_block_list=keep)
    clamped = np.float16(5.96e-08)
    tensors = [*converted.graph.initializer, *(n.attribute[0].t for n in converted.graph.node
                                              if n.op_type == "Constant" and n.attribute)]
    for t in tensors:
        if t.data_type == onnx.TensorProto.FLOAT16:
            a = numpy_helper.to_array(t)
            if (a == clamped).any():
                t.CopyFrom(numpy_helper.from_array(np.where(a == clamped, np.float16(0), a), t.name or None))
    return converted


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name, module", [("tiny_epsilon", "norm"), ("linear_attention_epsilon", "attn")])
def test_fp16_epsilon_underflow_is_located_and_repaired(runtime, name, module):
    """An epsilon of 1e-9 (an RMS norm's; a linear-attention normalizer's) that fp16 makes 0: located at its
    module with the constant named. The norm kept in fp32 by its --keep-fp pattern gives no divergence. (The
    normalizer kept in fp32 no longer meets 0 / 0, but its ratio of two near-zero sums still follows the fp16
    rounding of q and k on one of the six images: its module stays the first divergence by cosine, so only the
    location and the diagnosis are asserted for it.)"""
    from edgekit.quant.islands import match_patterns

    proto, inputs = _fp32(name)
    report = locate(proto, _straight_fp16(proto, []), Precision.FP16, runtime, {}, inputs)
    assert report.first is not None and report.first.module == module, report.line()
    d = report.diagnosis
    assert d["kind"] == "fp16_epsilon_underflow" and d["detail"]["value"] == pytest.approx(1e-9)
    assert d["keep_fp"] == [f"/{module}/*"]
    if name == "tiny_epsilon":
        keep = match_patterns(proto, tuple(d["keep_fp"]))
        repaired = locate(proto, _straight_fp16(proto, keep), Precision.FP16, runtime, {}, inputs)
        assert repaired.first is None, repaired.line()


@needs_unsaturated_int8
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_int8_outlier_channel_is_located_at_the_module_that_quantizes_it(runtime):
    """Channel 5 at 200x the others: a plain per-tensor QDQ first diverges where that tensor is quantized and
    used (module `mix`), and the diagnosis names the channel and its ratio to the median."""
    proto, inputs = _fp32("outlier_channel")
    report = locate(proto, _plain_int8(proto, inputs), Precision.INT8, runtime, {}, inputs)
    assert report.first is not None and report.first.module == "mix.0", report.line()
    d = report.diagnosis
    assert d["kind"] == "int8_outlier_channel" and d["detail"]["channel"] == 5 and d["detail"]["ratio"] > 50
    assert d["keep_fp"] == ["/mix/mix.0/*"]


FULL = os.environ.get("EDGEKIT_FULL_DEBUG") == "1"


@needs_unsaturated_int8
@pytest.mark.parametrize("target", ["onnx", pytest.param("openvino", marks=pytest.mark.skipif(
    not FULL, reason="35 s on 2 cores: runs with EDGEKIT_FULL_DEBUG=1"))])
def test_int8_outlier_channel_fails_the_gate_and_auto_fix_keeps_its_reader_in_float(target, tmp_path):
    """Channel 5 at 2000x under min-max ranges: the error builds up to the head (the first tap past the
    tolerance), and is traced back to `mix.0`, the layer reading the outlier tensor; --auto-fix keeps it in
    float and the gate passes."""
    out = tmp_path / "b"
    source = "tests.fixtures.diverge:severe_outlier_channel"
    with pytest.raises(ParityError) as failed:
        edgekit.export(source, target, out, precision="int8", method="minmax")
    message = str(failed.value)
    assert "int8 range dominated by an outlier channel: channel 5 of /gain/Mul_output_0, which mix.0 reads" \
        in message and "--keep-fp '/mix/mix.0/*'" in message, message
    fixed = edgekit.export(source, target, out, precision="int8", method="minmax", auto_fix=True)
    assert fixed.parity["passed"]
    (fix,) = fixed.manifest["auto_fix"]
    assert fix["module"] == "mix.0" and fix["kind"] == "int8_outlier_channel" and fix["keep_fp"] == ["/mix/mix.0/*"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("precision", [Precision.FP16, Precision.INT8])
def test_no_false_alarm(runtime, precision):
    """A model without any problem: every tap within the tolerance, no first divergence, no diagnosis."""
    if precision is Precision.INT8 and INT8_SATURATES:
        pytest.skip("this x86 CPU has no VNNI: its int8 GEMMs saturate u8 x s8 pairs (tests/helpers.py)")
    proto, inputs = _fp32("fine")
    if precision is Precision.INT8:
        candidate, options = _plain_int8(proto, inputs), {}
    elif runtime == "onnxruntime":
        from edgekit.targets.onnxruntime.backend import to_fp16

        candidate, options = to_fp16(proto), {}
    else:
        candidate, options = proto, {"inference_precision": "f16"}
    report = locate(proto, candidate, precision, runtime, options, inputs)
    assert report.first is None and report.diagnosis is None, report.line()
    assert len(report.taps) == 4 and all(t.nonfinite == 0 for t in report.taps)


def test_an_fp16_island_stays_fp32_inside(tmp_path):
    """The fp16 conversion no longer sends a value between two island nodes through fp16: the linear-attention
    normalizer's 1e-9 epsilon (0 in fp16) survives, and that model passes the fp16 gate by default."""
    from edgekit.targets.onnxruntime.backend import to_fp16

    proto, _ = _fp32("linear_attention_epsilon")
    converted = to_fp16(proto)
    producer = {o: n for n in converted.graph.node for o in n.output}
    for node in converted.graph.node:
        if node.op_type == "Cast" and node.attribute[0].i == onnx.TensorProto.FLOAT:
            source = producer.get(node.input[0])
            assert not (source is not None and source.op_type == "Cast"
                        and source.attribute[0].i == onnx.TensorProto.FLOAT16), node.name
    bundle = edgekit.export("tests.fixtures.diverge:linear_attention_epsilon", "onnx", tmp_path / "b", precision="fp16")
    assert bundle.parity["passed"]


NEGATED: list[str] = []  # the node whose matrix _negate_classifier flipped


def _negate_classifier(model):
    """A deliberately wrong rule: flips the sign of the first constant matrix a Gemm or MatMul reads."""
    import onnx_ir as ir

    for node in model.graph:
        if node.op_type in ("Gemm", "MatMul") and node.inputs[1] is not None and node.inputs[1].const_value is not None:
            value = node.inputs[1]
            value.const_value = ir.tensor(-value.const_value.numpy(), name=value.name)
            NEGATED.append(node.name)
            return 1, ""
    return 0, "no Gemm or MatMul with a constant matrix"


def test_a_rewrite_that_changes_the_numerics_is_found_by_bisection_and_left_out(monkeypatch, tmp_path):
    """A wrong rule registered for ONNX Runtime: the fp32 gate fails, leaving out each applied rewrite in turn
    finds it (not one of the correct ones), and --auto-fix exports without it."""
    from edgekit.config import Target
    from edgekit.rewrite import registry

    bad = registry.Rule("negate_classifier_for_test", "a deliberately wrong rule (test)", _negate_classifier)
    monkeypatch.setitem(registry._PIPELINES, Target.ONNX, registry._PIPELINES[Target.ONNX] + (bad,))
    with pytest.raises(ParityError) as failed:
        edgekit.export("tests.fixtures.tiny:tiny_classifier", "onnx", tmp_path / "b")
    message = str(failed.value)
    assert "--auto-fix finds it (an export without each) and leaves it out" in message
    # located first against the PyTorch modules, at the module whose matrix the rule negated
    from edgekit.profiling.layers import module_segments

    assert f"first diverging module: {'.'.join(module_segments(NEGATED[0]))} " in message, (NEGATED, message)
    report = json.loads((tmp_path / "b.parity-report.json").read_text())
    taps = report["layerwise"]["taps"]
    assert report["layerwise"]["precision"] == "fp32" and taps[-1]["cosine_min"] < 0.9  # it reaches the output
    assert "negate_classifier_for_test" in failed.value.applied and len(failed.value.applied) >= 2
    fixed = edgekit.export("tests.fixtures.tiny:tiny_classifier", "onnx", tmp_path / "b", auto_fix=True)
    assert fixed.parity["passed"] and fixed.manifest["rewrites"]["rules"]["negate_classifier_for_test"] == 0
    (fix,) = fixed.manifest["auto_fix"]
    assert fix["rewrite"] == "negate_classifier_for_test" and fix["kind"] == "rewrite_changed_numerics"
    assert "the rewrite negate_classifier_for_test changes the numerics" in fix["cause"]


def test_a_fused_kernel_that_disagrees_is_found_and_stepped_around(monkeypatch, tmp_path):
    """ONNX Runtime's QuickGelu fusion made wrong (tests/fixtures/diverge.broken_quick_gelu): the fp32 gate fails
    at the module the kernel replaces, lower optimization levels are tried, the first that passes (basic: the
    extended level still fuses it) is named with the fused kernel as the suspect, and --auto-fix records it."""
    from tests.fixtures.diverge import broken_quick_gelu

    broken = broken_quick_gelu(monkeypatch)
    with pytest.raises(ParityError) as failed:
        edgekit.export("tests.fixtures.diverge:quick_gelu", "onnx", tmp_path / "b")
    assert broken, "the injected fault never ran"
    message = str(failed.value)
    assert "first diverging module: act " in message and "pass --ort-optimization basic or --auto-fix" in message
    diagnosis = json.loads((tmp_path / "b.parity-report.json").read_text())["layerwise"]["diagnosis"]
    # the suspects: what the extended level fuses and basic does not (Conv+ReLU too: ONNX Runtime's names for its
    # fused nodes do not say which modules they came from)
    assert diagnosis["kind"] == "fused_kernel" and "com.microsoft.QuickGelu" in diagnosis["detail"]["kernels"]
    fixed = edgekit.export("tests.fixtures.diverge:quick_gelu", "onnx", tmp_path / "b", auto_fix=True)
    assert fixed.parity["passed"] and fixed.manifest["runtime_options"]["graph_optimization_level"] == "ORT_ENABLE_BASIC"
    (fix,) = fixed.manifest["auto_fix"]
    assert fix["kind"] == "fused_kernel" and fix["ort_optimization"] == "basic"
    assert fixed.manifest["export_config"]["target_options"]["ort_optimization"] == "basic"
    # the app opens it the way the gate ran it
    import onnxruntime

    from edgekit import runtime

    opened = runtime.load(tmp_path / "b")
    try:
        level = opened.runner.session.get_session_options().graph_optimization_level
        assert level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    finally:
        opened.close()


def test_debug_a_bundle_written_with_no_verify(cli, tmp_path):
    """`edgekit debug` on a failing fp16 bundle kept with --no-verify: the same module, in a table and a page."""
    bundle = tmp_path / "b"
    edgekit.export("tests.fixtures.diverge:overflowing", "onnx", bundle, precision="fp16", verify=False)
    code, out, err = cli("debug", bundle, "--json", "--html", tmp_path / "r.html")
    assert code == 0, err
    data = json.loads(out)
    assert data["layerwise"]["first_divergence"]["module"] == "rescale"
    assert data["layerwise"]["diagnosis"]["kind"] == "fp16_overflow" and not data["gate"]["passed"]
    assert "data:image/png;base64," in (tmp_path / "r.html").read_text()
    code, out, _ = cli("debug", bundle)
    assert code == 0 and "first diverging module: rescale" in " ".join(out.split())


@needs_unsaturated_int8
def test_debug_an_openvino_int8_bundle_taps_its_own_ir(tmp_path):
    """An OpenVINO int8 bundle (plain min-max ranges, gate off) is tapped in its own IR, FakeQuantize and all:
    the outlier channel is located at the module that quantizes it, as on the QDQ graph."""
    from edgekit.debug.bundle import debug_bundle

    bundle = tmp_path / "ov"
    edgekit.export("tests.fixtures.diverge:outlier_channel", "openvino", bundle, precision="int8", method="minmax",
                   verify=False)
    layer = debug_bundle(bundle)["layerwise"]
    assert layer["runtime"] == "openvino" and layer["first_divergence"]["module"] == "mix.0"
    assert layer["diagnosis"]["kind"] == "int8_outlier_channel" and layer["diagnosis"]["detail"]["channel"] == 5
    assert [t["module"] for t in layer["taps"]][:2] == ["stem", "block.0"]


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_debug_an_fp32_bundle_against_pytorch(cli, monkeypatch, tmp_path):
    """An fp32 bundle written with --no-verify by a wrong rule: located against the PyTorch modules."""
    from edgekit.config import Target
    from edgekit.profiling.layers import module_segments
    from edgekit.rewrite import registry

    bad = registry.Rule("negate_classifier_for_test", "a deliberately wrong rule (test)", _negate_classifier)
    monkeypatch.setitem(registry._PIPELINES, Target.ONNX, registry._PIPELINES[Target.ONNX] + (bad,))
    NEGATED.clear()
    edgekit.export("tests.fixtures.tiny:tiny_classifier", "onnx", tmp_path / "b", verify=False)
    code, out, err = cli("debug", tmp_path / "b", "--json")
    assert code == 0, err
    layer = json.loads(out)["layerwise"]
    assert layer["precision"] == "fp32" and layer["diagnosis"]["kind"] == "export_differs"
    assert layer["first_divergence"]["module"] == ".".join(module_segments(NEGATED[0]))


def test_debug_refuses_what_it_cannot_read(cli, tmp_path):
    """Not a bundle, a tampered bundle, a source that cannot be loaded: one line, exit 2."""
    code, _, err = cli("debug", tmp_path)
    assert code == 2 and "is not an edgekit bundle" in _error_line(err)
    fp16 = tmp_path / "fp16"
    edgekit.export("tests.fixtures.diverge:fine", "onnx", fp16, precision="fp16")
    manifest = json.loads((fp16 / "manifest.json").read_text())
    manifest["model"]["source"] = "tests.fixtures.gone:model"
    (fp16 / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = cli("debug", fp16)
    assert code == 2 and "pass --reference SOURCE" in _error_line(err)
    code, out, err = cli("debug", fp16, "--reference", "tests.fixtures.diverge:fine", "--json")
    assert code == 0 and json.loads(out)["layerwise"]["first_divergence"] is None, err
    with open(fp16 / "model.onnx", "ab") as f:
        f.write(b"tampered")
    code, _, err = cli("debug", fp16)
    assert code == 2 and "does not match its manifest" in _error_line(err)


def test_fp32_against_pytorch_modules_no_false_alarm():
    """The fp32 graph of a correct export matches every comparable PyTorch module's output."""
    from edgekit.debug.locate import locate_against_torch

    src = load_source("tests.fixtures.tiny:tiny_classifier")
    model = prepare_for_deploy(src.model)
    proto = export_onnx(model, src.spec.input_shape).model
    inputs = load_image_sets(None, src.spec.preprocess, None).parity.inputs
    for runtime in RUNTIMES:
        report = locate_against_torch(model, proto, runtime, {}, inputs)
        assert report.first is None and len(report.taps) >= 4, report.line()
        assert "head" in {t.module for t in report.taps}


def test_keep_fp_where_it_cannot_apply_is_refused(cli, tmp_path):
    """fp16 islands of the user's reach ONNX Runtime's conversion only: elsewhere --keep-fp is one line, exit 2."""
    code, _, err = cli("export", "tests.fixtures.diverge:fine", "--target", "openvino", "--precision", "fp16",
                       "--keep-fp", "/head/*", "--out", tmp_path / "b")
    assert code == 2 and "--keep-fp at fp16 applies to --target onnx" in _error_line(err)
    assert not (tmp_path / "b").exists()
