"""INT8 end to end on trained tiny models: each method, each target's recipe, the manifest, the budget loop."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import edgekit
from edgekit.calib import load_calibration, load_image_sets
from edgekit.config import Target, Task
from edgekit.stages.onnx_export import export_onnx, prepare_for_deploy
from edgekit.quant.calibrate import calibrate
from edgekit.quant.islands import find_islands
from edgekit.quant.options import Method, QuantOptions
from edgekit.quant.qdq import float_nodes, quantize_qdq
from edgekit.quant.recipes import onnxruntime_recipes
from edgekit.quant.scoring import Budget, Scorer
from edgekit.quant.sensitivity import blocks, meet_budget, sensitivity
from edgekit.sources import load_source
from tests.helpers import int8_plan
from tests.quant.conftest import CLS, SEG
from tests.helpers import needs_unsaturated_int8


@pytest.fixture(scope="module")
def cls_setup(digits):
    """fp32 ONNX of the trained tiny classifier, its calibration set (24 training renders) and a scorer on 24
    held-out validation renders (digits never seen in training, images never seen by calibration)."""
    src = load_source(CLS)
    proto = export_onnx(prepare_for_deploy(src.model), src.spec.input_shape).model
    calib = load_calibration(digits / "cls" / "calib", src.spec.preprocess, size=24)
    held_out = load_calibration(digits / "cls" / "val", src.spec.preprocess, size=24)
    assert not set(calib.item_sha256) & set(held_out.item_sha256)
    return proto, calib, Scorer(int8_plan(Target.ONNX).scoring, proto, held_out.inputs, Task.CLASSIFICATION, threads=2)


@needs_unsaturated_int8
@pytest.mark.parametrize("method", list(Method))
def test_each_method_keeps_the_trained_model(cls_setup, method):
    proto, calib, scorer = cls_setup
    options = QuantOptions(method=method)
    ranges, _ = calibrate(proto, calib.inputs, calib.sha256, options)
    islands = {i.node for i in find_islands(proto, int8_plan(Target.ONNX).island_rules)}
    score = scorer.score(quantize_qdq(proto, ranges, islands))
    # the default int8 parity tolerance (cosine >= 0.99, agreement >= 97%) on 24 held-out images
    assert score.cosine_min >= 0.99 and score.agreement >= 0.97, (method, score)


def test_export_int8_onnxruntime_manifest(digits, tmp_path):
    b = edgekit.export(CLS, "onnx", tmp_path / "b", precision="int8", calib=digits / "cls" / "calib", calib_size=24,
                       method="entropy")
    m = b.manifest
    q = m["quantization"]
    sets = load_image_sets(digits / "cls" / "calib", load_source(CLS).spec.preprocess, size=24, int8=True)
    # out of sample: 18 images calibrate, every 4th of the 24 is held out for the gate; both hashes recorded
    assert (q["calibration"]["images"], m["parity"]["set"]["count"]) == (18, 6)
    assert q["calibration"]["sha256"] == sets.calibration.sha256 == m["parity"]["set"]["calibration_sha256"]
    assert m["parity"]["set"]["sha256"] == sets.parity.sha256 != sets.calibration.sha256
    assert not set(sets.parity.item_sha256) & set(sets.calibration.item_sha256)
    assert m["parity"]["set"]["disjoint_from_calibration"] is True
    assert q["method"] == "entropy" and q["recipe"] in ("edgekit-u8s8", "edgekit-s8s8")
    assert {"layernorm", "gelu", "stem", "head"} <= set(q["islands"])
    # ONNX Runtime's rewrites fuse attention into com.microsoft.Attention, a float kernel ("plugin")
    assert "plugin" in q["islands"] or {"softmax", "attention_matmul"} <= set(q["islands"])
    assert all(entry["why"] and entry["count"] == len(entry["nodes"]) for entry in q["islands"].values())
    assert q["kept"]["agreement"] >= 0.97 and q["kept"]["cosine_min"] >= 0.99 and q["budget"]["met"]
    assert q["speed"]["fp32_ms"] > 0 and q["speed"]["int8_ms"] > 0
    assert {c["name"] for c in q["candidates"]} == {"edgekit-u8s8", "edgekit-s8s8"}  # measured, not assumed
    assert m["parity"]["passed"] and m["parity"]["tolerance"]["agreement"] == 0.97
    saved = onnx.load(str(tmp_path / "b" / "model.onnx"))
    assert sum(n.op_type == "QuantizeLinear" for n in saved.graph.node) > 5
    islands = {n for e in q["islands"].values() for n in e["nodes"]}
    assert islands <= float_nodes(saved)  # the bundle's graph keeps them float


def test_export_int8_openvino_chooses_among_nncf_and_edgekit(digits, tmp_path):
    pytest.importorskip("nncf", reason="OpenVINO int8 uses NNCF (pip install nncf)")
    b = edgekit.export(CLS, "openvino", tmp_path / "b", precision="int8", calib=digits / "cls" / "calib",
                       calib_size=16, method="minmax")
    q = b.manifest["quantization"]
    names = [c["name"] for c in q["candidates"]]
    assert names == ["nncf-performance", "nncf-transformer", "edgekit-u8s8"]
    assert sum(c["chosen"] for c in q["candidates"]) == 1 and all(c["ms"] for c in q["candidates"])
    assert b.manifest["parity"]["passed"] and b.manifest["runtime_options"]["inference_precision"] == "f32"


def test_segmentation_int8(digits_seg, tmp_path):
    b = edgekit.export(SEG, "onnx", tmp_path / "b", precision="int8", calib=digits_seg / "seg" / "calib", calib_size=12,
                       method="mse")
    q = b.manifest["quantization"]
    assert b.manifest["parity"]["agreement_kind"] == "per-pixel label"
    assert q["kept"]["agreement"] >= 0.97 and b.manifest["parity"]["passed"]
    assert [n for n in q["islands"]["head"]["nodes"]] == ["/head/Conv"]  # the segmentation head


@needs_unsaturated_int8
def test_sensitivity_ranking_and_budget_loop(cls_setup):
    """With every op int8 (no default islands) the trained model falls short of a strict budget; keeping the
    most sensitive blocks in float, one by one in ranked order, meets it."""
    proto, calib, scorer = cls_setup
    options = QuantOptions(method=Method.MINMAX, default_islands=False)
    ranges, _ = calibrate(proto, calib.inputs, calib.sha256, options)
    candidate = onnxruntime_recipes(proto, [], ranges, options)[0]
    assert candidate.name == "edgekit-u8s8"
    grouped = blocks(proto, set())
    assert len(grouped) >= 4 and all(grouped.values())
    ranked = sensitivity(candidate, scorer, proto, set())
    keys = [(b.score.agreement, b.score.cosine_mean) for b in ranked]
    assert keys == sorted(keys) and {b.block for b in ranked} == set(grouped)
    first = scorer.score(candidate.make(set()))
    # strict: closer to fp32 than all-int8 is (a budget the loop must work for)
    budget = Budget(agreement=1.0, cosine=min(0.99999, 1 - (1 - first.cosine_min) / 4))
    assert not budget.met(first)
    result = meet_budget(candidate, scorer, set(), ranked, budget, first)
    assert result.met and result.kept and budget.met(result.score)
    order = [b.block for b in ranked]
    positions = [order.index(k) for k in result.kept]
    assert positions == sorted(positions)  # kept most sensitive first (some may be given back afterwards)
    added = [s["kept"] for s in result.steps[1:] if "kept" in s]
    assert added == order[:len(added)] and result.kept[-1] == added[-1]  # the last one added is never given back
    assert result.score.cosine_min > first.cosine_min


def test_budget_loop_gives_back_blocks_the_budget_holds_without():
    """Alone-sensitivity ranks A first, but only B's error matters in combination: the loop keeps A, then B
    (the budget holds), then gives A back to int8 because the budget still holds without it."""
    from edgekit.quant.recipes import Candidate
    from edgekit.quant.scoring import Score
    from edgekit.quant.sensitivity import BlockScore

    ranked = [BlockScore("A", ("a1", "a2"), Score(0.5, 0.5, 0.5)), BlockScore("B", ("b1",), Score(0.6, 0.6, 0.6)),
              BlockScore("C", ("c1",), Score(0.9, 0.9, 0.9))]

    class FakeScorer:
        calls = 0

        def score(self, kept_float):
            self.calls += 1
            ok = "b1" in kept_float
            return Score(1.0 if ok else 0.9, 0.999 if ok else 0.9, 0.999 if ok else 0.9)

    scorer = FakeScorer()
    candidate = Candidate("fake", {}, lambda keep: frozenset(keep))
    budget = Budget(1.0, 0.99)
    result = meet_budget(candidate, scorer, {"island"}, ranked, budget, Score(0.9, 0.9, 0.9))
    assert result.met and result.kept == ("B",) and result.kept_nodes == frozenset({"b1"})
    assert [s.get("kept", s.get("released")) for s in result.steps] == [None, "A", "B", "A"]
    assert scorer.calls == 3  # A, A+B, then B alone

    # a block the budget needs stays kept: here A and B are both needed
    class BothNeeded(FakeScorer):
        def score(self, kept_float):
            ok = {"a1", "b1"} <= kept_float
            return Score(1.0 if ok else 0.9, 0.999, 0.999)

    result = meet_budget(candidate, BothNeeded(), set(), ranked, budget, Score(0.9, 0.9, 0.9))
    assert result.met and result.kept == ("A", "B")
    assert result.steps[-1]["released"] == "A" and result.steps[-1]["agreement"] == 0.9


def test_max_drop_budget_through_the_api(digits, tmp_path):
    """--max-drop 0 with no default islands: blocks are kept float until agreement is 100%."""
    fp32 = edgekit.export(CLS, "onnx", tmp_path / "fp32")
    b = edgekit.quantize(fp32.path, tmp_path / "q", calib=digits / "cls" / "calib", calib_size=16, method="minmax",
                         default_islands=False, max_drop=0.0)
    q = b.manifest["quantization"]
    assert q["budget"]["agreement_min"] == 1.0 and q["budget"]["met"] and q["kept"]["agreement"] == 1.0
    assert q["budget"]["max_drop"] == 0.0 and q["reference_bundle"] == str(fp32.path.resolve())
    steps = q["budget"]["steps"]
    added = [s["kept"] for s in steps[1:] if "kept" in s]
    kept = q["budget"]["kept_blocks"]
    assert steps[0]["kept"] is None and kept == [k for k in added if k in kept]
    assert set(added) - set(kept) <= {s["released"] for s in steps if "released" in s}  # given back, with a step
    assert bool(q["budget"]["kept_blocks"]) == ("budget" in q["islands"])  # kept blocks are listed, with why


@needs_unsaturated_int8
def test_tensorrt_qdq_placement(cls_setup):
    from edgekit.quant import tensorrt_qdq
    from edgekit.targets.tensorrt.qdq import check_qdq

    proto, calib, scorer = cls_setup
    q = tensorrt_qdq(proto, calib, method="entropy")
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in q.graph.initializer}
    producer = {o: n for n in q.graph.node for o in n.output}
    for n in q.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = inits[n.input[2]]
            assert zp.dtype == np.int8 and not zp.any()  # symmetric int8: the only kind TensorRT takes
    for n in q.graph.node:
        if n.op_type in ("Conv", "Gemm", "MatMul"):
            consumers = [c for c in q.graph.node if n.output[0] in c.input]
            assert not any(c.op_type == "QuantizeLinear" for c in consumers), n.name  # no Q/DQ on outputs
    assert not any(len(i.dims) == 1 and i.data_type == onnx.TensorProto.INT32 for i in q.graph.initializer)  # fp biases
    islands = {i.node for i in find_islands(proto, int8_plan(Target.TRT).island_rules)}
    assert islands <= float_nodes(q)
    report = type("R", (), {"problems": [], "warnings": []})()
    stats = check_qdq(q, report, require=True)
    assert not report.problems and stats["quantized_compute"] >= 8, (report.problems, stats)
    score = scorer.score(q)
    assert score.agreement >= 0.97 and score.cosine_min >= 0.99
    # a residual Add fed by an int8 layer gets its skip input quantized, for TensorRT's Conv+Add fusion
    residual = [n for n in q.graph.node if n.op_type == "Add" and any(
        (producer.get(i) is not None and producer[i].op_type == "DequantizeLinear") for i in n.input)]
    assert residual


def test_tensorrt_export_hands_over_qdq(digits):
    """The export hook gives the TensorRT target the QDQ graph (its engine is built on a GPU)."""
    from edgekit.config import ExportConfig, Precision
    from edgekit.quant.int8 import quantize_onnx_for_target

    src = load_source(CLS)
    proto = export_onnx(prepare_for_deploy(src.model), src.spec.input_shape).model
    calib = load_calibration(digits / "cls" / "calib", src.spec.preprocess, size=12)
    config = ExportConfig(source=CLS, target=Target.TRT, precision=Precision.INT8)
    from edgekit.progress import Reporter

    q, info = quantize_onnx_for_target(proto, int8_plan(Target.TRT), config, src.spec, calib, Reporter())
    assert info["recipe"] == "edgekit-trt-s8s8" and info["kept"]["agreement"] >= 0.97
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)


def test_a_budget_finer_than_the_calibration_set_says_so(digits, tmp_path):
    """16 images, of which 12 calibrate (every 4th is held out for the gate): one changed top-1 is 8.33 points,
    so --max-drop 1 can allow no change; the user is told."""
    from edgekit.progress import Reporter

    class Notes(Reporter):
        def __init__(self):
            self.notes = []

        def note(self, message):
            self.notes.append(message)

    fp32 = edgekit.export(CLS, "onnx", tmp_path / "fp32")
    rep = Notes()
    b = edgekit.quantize(fp32.path, tmp_path / "q", calib=digits / "cls" / "calib", calib_size=16, method="minmax",
                         max_drop=1.0, reporter=rep)
    q = b.manifest["quantization"]
    assert q["budget"]["agreement_step_points"] == 8.3333 and q["budget"]["agreement_min"] == 0.99
    [note] = [n for n in rep.notes if "--max-drop" in n]
    assert "12 images" in note and "8.33 points" in note and "100+ images" in note
    rep2 = Notes()
    edgekit.quantize(fp32.path, tmp_path / "q2", calib=digits / "cls" / "calib", calib_size=16, method="minmax",
                     max_drop=10.0, reporter=rep2)
    assert not [n for n in rep2.notes if "--max-drop" in n]  # 10 points is coarser than one image: no note
