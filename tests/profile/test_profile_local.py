"""Profiling real bundles on this machine: every target that runs here, with per-layer data, the
versioned schema, sweeps, cold start, memory and pinned inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest

import edgekit
from edgekit.errors import UsageError
from edgekit.profiling.report import SCHEMA, SCHEMA_VERSION, load_report, schema
from tests.profile.conftest import FAST


def _validate(data: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(data, schema())


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_every_target_here_is_profiled_per_layer(bundles, target):
    report = edgekit.profile(bundles[target], **FAST)
    data = report.data
    _validate(data)
    assert data["schema"] == SCHEMA and data["schema_version"] == SCHEMA_VERSION
    (result,) = data["results"]
    (run,) = result["runs"]
    lat = run["latency_ms"]
    assert lat["count"] == FAST["iterations"] == len(run["samples_ms"])
    assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert run["throughput_ips"] == pytest.approx(1e3 * len(run["samples_ms"]) / sum(run["samples_ms"]))
    cold = run["cold_start"]
    assert cold["total_ms"] == pytest.approx(cold["load_ms"] + cold["first_inference_ms"]) and cold["load_ms"] > 0
    assert run["memory"]["peak_rss_mb"] > 10 and run["memory"]["model_rss_mb"] >= 0
    layers = run["layers"]
    assert layers["profiler"] == {"onnx": "onnxruntime profiling", "openvino": "openvino performance counters"}[target]
    assert len(layers["records"]) >= 5 and layers["total_ms"] > 0
    # the tiny model's attention block exists in both runtimes' breakdowns, mapped from their own names
    blocks = {g["name"] for g in layers["by_block"]}
    assert "backbone.attn" in blocks and "backbone.stem.0" in blocks, blocks  # stem is an nn.Sequential
    mapped = [r for r in layers["records"] if r["onnx_nodes"]]
    assert len(mapped) >= len(layers["records"]) // 2
    assert any(r["module"] == "backbone.attn.qkv" for r in layers["records"])
    assert len(layers["top"]) == min(10, len(layers["records"]))
    rf = run["roofline"]
    assert rf["flops"] == json.loads((bundles[target] / "manifest.json").read_text())["model"]["flops"]
    assert rf["achieved_gflops"] == pytest.approx(rf["flops"] / (lat["median"] * 1e-3) / 1e9)
    assert 0 < rf["fraction_of_peak"] < 1


def test_pinned_inputs_are_the_calibration_photographs(bundles):
    from edgekit.calib import load_calibration
    from edgekit.preprocess import Preprocess
    from edgekit.profiling.profiler import pinned_inputs

    manifest = json.loads((bundles["onnx"] / "manifest.json").read_text())
    images, info = pinned_inputs(manifest, None)
    ref = load_calibration(None, Preprocess.from_dict(manifest["preprocess"]))
    assert images.shape == (len(ref), 1, 3, 64, 64) and info["sha256"] == ref.sha256
    np.testing.assert_array_equal(images[:, 0], np.concatenate(ref.inputs))
    assert all(np.abs(x).mean() > 0.1 for x in images)  # photographs, never zeros


def test_batch_and_thread_sweeps(bundles):
    data = edgekit.profile(bundles["onnx-dyn"], batch="1,2", threads="1,2", **dict(FAST, layer_iters=0)).data
    runs = data["results"][0]["runs"]
    assert [(r["batch"], r["threads"]) for r in runs] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert runs[2]["roofline"]["flops"] == 2 * runs[0]["roofline"]["flops"]
    assert all(r["layers"] is None for r in runs)
    assert runs[3]["key"].endswith("/b2/t2")
    # the per-core peak scales with the threads a run may use
    assert runs[1]["roofline"]["peak_gflops"] == pytest.approx(2 * runs[0]["roofline"]["peak_gflops"])


def test_duration_mode_runs_at_least_the_minimum(bundles):
    data = edgekit.profile(bundles["onnx"], warmup=1, duration="50ms", layer_iters=0).data
    run = data["results"][0]["runs"][0]
    assert run["latency_ms"]["count"] >= 10 and data["settings"]["duration_s"] == pytest.approx(0.05)
    assert run["wall_s"] >= 0.05


def test_fixed_batch_bundle_refuses_a_batch_sweep(bundles):
    with pytest.raises(UsageError, match="fixed batch of 1; re-export it with --dynamic-batch"):
        edgekit.profile(bundles["onnx"], batch="1,4", **FAST)


def test_tampered_bundle_is_refused_before_timing(bundles, tmp_path):
    import shutil

    copy = shutil.copytree(bundles["onnx"], tmp_path / "b")
    with open(copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(UsageError, match="does not match its manifest"):
        edgekit.profile(copy, **FAST)


def test_reports_written_and_read_back(bundles, tmp_path):
    report = edgekit.profile([bundles["onnx"], bundles["openvino"]], out=tmp_path / "r.json",
                             markdown=tmp_path / "r.md", **FAST)
    back = load_report(tmp_path / "r.json")
    assert back == json.loads(json.dumps(report.data))
    md = (tmp_path / "r.md").read_text()
    assert md.count("| tiny_classifier |") == 2 and "top 10 layers" in md
    newer = dict(back, schema_version="2.0")
    (tmp_path / "new.json").write_text(json.dumps(newer))
    with pytest.raises(UsageError, match="newer than this edgekit reads"):
        load_report(tmp_path / "new.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(UsageError, match="not an edgekit profile report"):
        load_report(tmp_path / "other.json")
    assert not list(tmp_path.glob(".*partial"))  # atomic writes leave no temporaries


def test_runner_profile_hook(bundles):
    """The targets' Runner.profile() is the per-layer hook the profiler uses; usable on its own."""
    runner = edgekit.runtime.load(bundles["openvino"])
    x = np.full((1, 3, 64, 64), 0.5, np.float32)
    prof = runner.runner.profile([{runner.runner.input_names[0]: x}], iters=3, warmup=1)
    assert prof["iterations"] == 3 and prof["records"] and all(r["time_ms"] >= 0 for r in prof["records"])


def test_several_bundles_are_also_timed_head_to_head(bundles):
    """Two bundles profiled together: both measured alone, then timed interleaved by the timing harness, the
    first also as its own A/A control; the report carries each ratio with its interval."""
    from edgekit.profiling.markdown import render_markdown

    data = edgekit.profile([bundles["onnx"], bundles["openvino"]], threads="1,2", **dict(FAST, layer_iters=0)).data
    _validate(data)
    assert len(data["results"]) == 2
    h1, h2 = data["head_to_head"]
    assert (h1["threads"], h2["threads"], h1["rounds"], h1["clock"]) == (1, 2, FAST["iterations"], "wall")
    base, other = h1["rows"]
    assert base["bundle"] == h1["baseline"] == "tiny_classifier onnx fp32" and "ratio" not in base
    assert other["bundle"] == "tiny_classifier openvino fp32"
    assert other["low"] <= other["ratio"] <= other["high"] and other["verdict"] in ("faster", "slower", "within noise")
    assert other["ratio"] == pytest.approx(base["median_ms"] / other["median_ms"])
    assert h1["noise"]["low"] <= h1["noise"]["ratio"] <= h1["noise"]["high"]
    text = render_markdown(data)
    assert "### Head to head, b1 t1" in text and "A/A control (the baseline timed twice)" in text
    assert edgekit.profile(bundles["onnx"], **dict(FAST, layer_iters=0)).data.get("head_to_head") is None


def test_head_to_head_labels_tell_identical_bundles_apart(bundles):
    from edgekit.manifest import read_manifest
    from edgekit.profiling.headtohead import labels

    m = read_manifest(bundles["onnx"])
    assert labels([(bundles["onnx"], m), (bundles["onnx-dyn"], m)]) == [
        "tiny_classifier onnx fp32 (onnx)", "tiny_classifier onnx fp32 (onnx-dyn)"]
