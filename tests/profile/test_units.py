"""The profiler's arithmetic without running a model: statistics, pinned feeds, runtime trace readers,
ONNX-node and module mapping, aggregation, device peaks, roofline, regression and option parsing."""
from __future__ import annotations

import datetime

import numpy as np
import pytest

from edgekit.engines import measure as dr
from edgekit.engines.onnxruntime import parse_ort_trace
from edgekit.engines.openvino import ov_layers
from edgekit.engines.tensorrt import trt_layer_names
from edgekit.errors import UsageError
from edgekit.profiling.config import ProfileConfig, Remote, parse_duration, parse_percent, parse_sweep
from edgekit.profiling.devices import NAMED, describe_cpu, flops_per_cycle, get_device
from edgekit.profiling.layers import GraphIndex, aggregate, annotate, module_segments, summarize
from edgekit.profiling.regression import compare, verdict
from edgekit.profiling.roofline import roofline


def test_latency_stats_match_numpy():
    rng = np.random.default_rng(0)
    samples = list(rng.gamma(4.0, 0.5, 501))
    s = dr.latency_stats(samples)
    a = np.asarray(samples)
    assert s["count"] == 501
    for key, want in (("median", np.median(a)), ("p90", np.percentile(a, 90)), ("p99", np.percentile(a, 99)),
                      ("min", a.min()), ("max", a.max()), ("mean", a.mean()), ("std", a.std(ddof=1))):
        assert s[key] == pytest.approx(want, rel=1e-12), key
    assert s["min"] <= s["median"] <= s["p90"] <= s["p99"] <= s["max"]


def test_pinned_feeds_rotate_through_images_at_every_batch():
    images = np.arange(4 * 3 * 2 * 2, dtype=np.float32).reshape(4, 1, 3, 2, 2) + 1  # 4 distinct, none zero
    feeds = dr.make_feeds(images, 3, "x")
    assert len(feeds) == 4 and all(f["x"].shape == (3, 3, 2, 2) for f in feeds)
    np.testing.assert_array_equal(feeds[2]["x"], np.concatenate([images[2], images[3], images[0]]))
    assert len({f["x"].tobytes() for f in feeds}) == 4


def _ort_event(name, ts, dur, op="Conv", cat="Node"):
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "args": {"op_name": op, "provider": "CPU",
                                                                   "mem_arena_held": "2097152"}}


def test_ort_trace_skips_warmup_runs_and_takes_median_per_run():
    events = []
    for run, (conv, relu) in enumerate([(900, 90), (100, 10), (300, 30), (200, 20)]):
        t0 = 10_000 * run
        events.append(_ort_event("model_run", t0, 5000, cat="Session"))
        events.append(_ort_event("/stem/conv/Conv_kernel_time", t0 + 10, conv))
        events.append(_ort_event("/stem/act/Relu_kernel_time", t0 + 20, relu, op="Relu"))
        events.append(_ort_event("/stem/act/Relu_kernel_time", t0 + 30, relu, op="Relu"))  # twice per run
    records, memory = parse_ort_trace(events, skip_runs=1)
    by = {r["name"]: r for r in records}
    assert by["/stem/conv/Conv"]["time_ms"] == pytest.approx(0.2)  # median of 100, 300, 200 us; run 0 skipped
    assert by["/stem/act/Relu"]["time_ms"] == pytest.approx(0.04) and by["/stem/act/Relu"]["calls"] == 2
    assert [r["name"] for r in records] == ["/stem/conv/Conv", "/stem/act/Relu"]  # execution order
    assert memory == {"arena_peak_mb": 2.0}


class _Info:
    def __init__(self, name, us):
        self.node_name, self.node_type, self.exec_type = name, "FullyConnected", "gemm_f32"
        self.real_time = datetime.timedelta(microseconds=us)
        self.status = "Status.EXECUTED"


class _RunningAverageRequest:
    """Mimics OpenVINO's CPU counters: each layer reports its running average since compilation."""

    def __init__(self, costs):
        self.costs, self.n, self.total = costs, 0, 0.0

    def infer(self, feeds):
        self.total += self.costs[self.n]
        self.n += 1

    @property
    def profiling_info(self):
        return [_Info("fc", self.total / self.n)]


class _RuntimeModel:
    def get_runtime_model(self):
        return self

    def get_ordered_ops(self):
        return []


def test_openvino_counters_are_windowed_out_of_running_averages():
    # first inference 5 ms (weight repacking), warm-up 100 us, profiled window 20 us each
    costs = [5000.0, 100.0] + [20.0] * 10
    prof = ov_layers(_RuntimeModel(), _RunningAverageRequest(costs), [{}], iters=10, warmup=2)
    assert prof["statistic"] == "mean"
    # without windowing the first inference would show as (5000 + 100 + 200) / 12 = 442 us. OpenVINO
    # reports whole microseconds, so the recovered mean carries up to 1 us x (w + n) / n of rounding
    assert prof["records"][0]["time_ms"] == pytest.approx(0.020, abs=1.2e-3)


def test_trt_fused_layer_names_give_onnx_nodes():
    assert trt_layer_names("/stem/conv/Conv + /stem/act/Relu") == ["/stem/conv/Conv", "/stem/act/Relu"]
    assert trt_layer_names("{ForeignNode[/a/MatMul.../a/Softmax]}") == ["/a/MatMul", "/a/Softmax"]
    assert trt_layer_names("Reformatting CopyNode for Input Tensor 0 to /b/Conv") == []


def test_module_paths_from_exporter_names():
    assert module_segments("/stages.1/blocks.0/attn/MatMul") == ["stages.1", "blocks.0", "attn"]
    # a called nn.Sequential scopes itself, then its child with the index: one unit, the real path
    assert module_segments("/stages/stages.2/blocks/blocks.0/proj/Conv") == ["stages.2", "blocks.0", "proj"]
    assert module_segments("/ReduceMean") == []
    assert module_segments("MVN_97") is None


def _graph():
    # original graph: conv -> (gelu as 3 nodes) -> attn matmul -> head
    return GraphIndex([("/stem/conv/Conv", ["x"], ["c"]), ("/stem/act/Div", ["c"], ["d"]),
                       ("/stem/act/Erf", ["d"], ["e"]), ("/stem/act/Mul", ["e"], ["g"]),
                       ("/stages.0/blocks.1/attn/MatMul", ["g"], ["m"]), ("/head/Gemm", ["m"], ["y"])])


def test_annotate_maps_runtime_names_to_nodes_modules_and_blocks():
    records = [
        {"name": "/stem/conv/Conv_output_0_nchwc", "op_type": "Conv", "time_ms": 1.0},  # ORT NCHWc rename
        {"name": "Gelu", "op_type": "Gelu", "time_ms": 0.5, "outputs": ["g"]},  # ORT fusion: found by tensor
        {"name": "Transpose_token_3", "op_type": "Transpose", "time_ms": 0.25},  # runtime-made: inferred
        {"name": "/stages.0/blocks.1/attn/MatMul/MatMulScaleFusion/", "op_type": "FusedMatMul", "time_ms": 2.0},
        {"name": "out", "op_type": "FullyConnected", "time_ms": 0.25, "onnx_nodes": ["/head/Gemm"]},  # OV-style
    ]
    out = annotate(records, _graph(), block_depth=2)
    assert [r["onnx_nodes"] for r in out] == [["/stem/conv/Conv"], ["/stem/act/Mul"], [],
                                               ["/stages.0/blocks.1/attn/MatMul"], ["/head/Gemm"]]
    assert [r["module"] for r in out] == ["stem.conv", "stem.act", "", "stages.0.blocks.1.attn", "head"]
    assert [r["module_inferred"] for r in out] == [False, False, True, False, False]
    assert [r["block"] for r in out] == ["stem.conv", "stem.act", "(root)", "stages.0.blocks.1", "head"]
    assert "outputs" not in out[1]


def test_annotate_without_graph_undoes_openvino_renames():
    records = [{"name": "input_abcd_acdb_/stem/conv/Conv/WithoutBiases", "op_type": "Reorder", "time_ms": 0.1},
               {"name": "/stem/conv/Conv/WithoutBiases", "op_type": "Convolution", "time_ms": 1.0,
                "onnx_nodes": ["/stem/conv/Conv/WithoutBiases", "/stem/conv/Conv", "/stem/act/Mul"]},
               {"name": "MVN_3", "op_type": "MVN", "time_ms": 0.2, "onnx_nodes": ["MVN_3"]},
               {"name": "/stem/norm/Add", "op_type": "Eltwise", "time_ms": 0.1}]
    out = annotate(records, None, block_depth=1)
    assert out[0]["module"] == "stem.conv" and not out[0]["module_inferred"]
    assert out[1]["onnx_nodes"] == ["/stem/conv/Conv", "/stem/act/Mul"] and out[1]["module"] == "stem"
    assert out[2]["module"] == "stem" and out[2]["module_inferred"]  # between stem and stem.norm
    assert [r["block"] for r in out] == ["stem"] * 4


def test_aggregation_and_summary_add_up():
    records = [{"name": f"/b{i % 3}/op{i}/X", "op_type": "Conv" if i % 2 else "MatMul", "kernel": "", "calls": 1,
                "time_ms": float(i + 1), "onnx_nodes": []} for i in range(10)]
    s = summarize({"profiler": "test", "iterations": 5, "records": records}, None, block_depth=1, top=3,
                  latency_ms=40.0)
    assert s["total_ms"] == pytest.approx(55.0) and s["coverage"] == pytest.approx(55.0 / 40.0)
    assert s["top"] == ["/b0/op9/X", "/b2/op8/X", "/b1/op7/X"]
    for key in ("by_op_type", "by_block"):
        assert sum(g["time_ms"] for g in s[key]) == pytest.approx(55.0)
        assert sum(g["share"] for g in s[key]) == pytest.approx(1.0)
    assert {g["name"]: g["time_ms"] for g in aggregate(s["records"], "op_type")} == {"MatMul": 25.0, "Conv": 30.0}


def test_cpu_peaks_from_isa():
    zen4 = {"machine": "x86_64", "vendor": "AuthenticAMD", "family": 0x19, "cores": 2, "mhz": 3000.0,
            "flags": ["avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]}
    per_cycle, why = flops_per_cycle(zen4)
    assert per_cycle == {"fp32": 32.0, "bf16": 64.0, "int8": 128.0} and "Zen 4" in why
    spec = describe_cpu(zen4)
    assert spec.peak_gflops["fp32"] == pytest.approx(32 * 3.0 * 2)
    assert spec.peak("fp32", threads=1) == (pytest.approx(96.0), "fp32")  # per-core scaling
    assert spec.peak("fp16", threads=None)[1] == "fp32"  # no fp16 units: fp16 runs in fp32
    intel = dict(zen4, vendor="GenuineIntel", family=6, flags=["avx512f", "amx_bf16", "amx_int8"])
    assert flops_per_cycle(intel)[0] == {"fp32": 64.0, "bf16": 1024.0, "int8": 2048.0}
    arm = {"machine": "aarch64", "flags": ["asimd", "asimdhp", "asimddp"], "cores": 8, "mhz": 2200.0}
    assert flops_per_cycle(arm)[0] == {"fp32": 16.0, "fp16": 32.0, "int8": 64.0}
    assert get_device(None).kind == "cpu" and get_device("jetson-orin-agx") is NAMED["jetson-orin-agx"]
    with pytest.raises(UsageError, match="unknown device"):
        get_device("pdp-11")


def test_roofline_figures():
    cost = {"flops_per_image": 2e9, "weight_bytes": 1_000_000_000, "input_bytes_per_image": 600_000,
            "output_bytes_per_image": 4000}
    orin = NAMED["jetson-orin-nano"]
    r = roofline(cost, batch=2, median_ms=10.0, device=orin, precision="fp16", threads=None)
    assert r["flops"] == 4e9 and r["bytes"] == 1_000_000_000 + 2 * 604_000
    assert r["achieved_gflops"] == pytest.approx(400.0)
    assert r["fraction_of_peak"] == pytest.approx(400.0 / orin.peak_gflops["fp16"])
    assert r["intensity"] == pytest.approx(4e9 / 1_001_208_000)
    assert r["attainable_gflops"] == pytest.approx(r["intensity"] * 68.0) and r["bound"] == "memory"
    light = roofline(dict(cost, weight_bytes=1_000_000), 2, 10.0, orin, "fp16", None)
    assert light["bound"] == "compute" and light["attainable_gflops"] == orin.peak_gflops["fp16"]
    phone = roofline(cost, 1, 10.0, NAMED["iphone-15-pro"], "fp32", None)
    assert phone["peak_gflops"] is None and phone["fraction_of_peak"] is None  # no published fp32 peak


def _report(medians: dict) -> dict:
    return {"results": [{"runs": [{"key": k, "latency_ms": {"median": v}} for k, v in medians.items()]}]}


def test_regression_compare_fails_only_beyond_threshold():
    base = _report({"m/onnx/fp32/b1/t1": 10.0, "m/onnx/fp32/b1/t2": 6.0})
    now = _report({"m/onnx/fp32/b1/t1": 10.9, "m/onnx/fp32/b1/t2": 6.9, "m/onnx/fp32/b2/t1": 30.0})
    reg = compare(now, base, 10.0, "last.json")
    by = {c["key"]: c for c in reg["comparisons"]}
    assert by["m/onnx/fp32/b1/t1"]["change_pct"] == pytest.approx(9.0) and not by["m/onnx/fp32/b1/t1"]["regressed"]
    assert by["m/onnx/fp32/b1/t2"]["change_pct"] == pytest.approx(15.0) and by["m/onnx/fp32/b1/t2"]["regressed"]
    assert reg["failed"] and reg["unmatched"] == ["m/onnx/fp32/b2/t1"]
    assert "6.900 ms vs baseline 6.000 ms (+15.0% > 10%)" in verdict(reg)
    assert not compare(now, base, 20.0)["failed"]
    with pytest.raises(UsageError, match="no run matching"):
        compare(_report({"other/onnx/fp32/b1/t1": 1.0}), base, 10.0)


def test_option_parsing():
    assert parse_percent("10%") == 10.0 and parse_percent(2.5) == 2.5
    assert parse_duration("500ms") == pytest.approx(0.5) and parse_duration("2m") == 120.0
    assert parse_sweep("1,2,4", "--batch") == (1, 2, 4) and parse_sweep("2,2", "--batch") == (2,)
    assert parse_sweep(None, "--threads", allow_default=True) == (None,)
    assert parse_sweep("default,1", "--threads", allow_default=True) == (None, 1)
    r = Remote.parse("nvidia@jetson.local:2222")
    assert (r.destination, r.port, str(r)) == ("nvidia@jetson.local", 2222, "nvidia@jetson.local:2222")
    for bad, match in (("x", "not a percentage"), ("soon", "not a duration"), ("1,a", "integers")):
        with pytest.raises(UsageError, match=match):
            (parse_percent if match == "not a percentage" else parse_duration if "duration" in match
             else lambda t: parse_sweep(t, "--batch"))(bad)
    with pytest.raises(UsageError, match="not of the form"):
        Remote.parse("a@b@c")
    with pytest.raises(UsageError, match="go together"):
        ProfileConfig(bundles=(".",), baseline=None, fail_over_pct=10.0)
    with pytest.raises(UsageError, match="at least 2"):
        ProfileConfig(bundles=(".",), iterations=1)


def test_engines_are_self_contained():
    """The folder copied to a device imports only the standard library, numpy, the runtimes and itself."""
    import ast
    import sys
    from pathlib import Path

    imported = set()
    for source in Path(dr.__file__).parent.glob("*.py"):
        tree = ast.parse(source.read_text())
        imported |= {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    # torch: the ExecuTorch engine hands the program torch tensors (the executorch wheel requires torch)
    assert third_party == {"numpy", "onnxruntime", "openvino", "tensorrt", "cuda", "onnx", "coremltools", "PIL",
                           "executorch", "ai_edge_litert", "torch"}, third_party


def test_engines_folder_measures_a_bundle_without_edgekit(tmp_path):
    """What `edgekit profile --remote` runs on a device: the engines folder copied as `engines`, run as
    `python3 -m engines` where importing edgekit fails."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import onnx
    from onnx import TensorProto, helper

    shutil.copytree(Path(dr.__file__).parent, tmp_path / "engines", ignore=shutil.ignore_patterns("__pycache__"))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="/act/Relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(bundle / "model.onnx"))
    (bundle / "manifest.json").write_text(json.dumps({
        "runtime": {"name": "onnxruntime"}, "runtime_options": {}, "files": [{"path": "model.onnx"}],
        "inputs": [{"name": "x", "dtype": "float32"}]}))
    np.save(tmp_path / "inputs.npy", np.random.default_rng(0).standard_normal((2, 1, 3, 4, 4)).astype(np.float32))
    blocked = ("import runpy, sys; sys.modules['edgekit'] = None; sys.argv = ['engines', *sys.argv[1:]]; "
               "runpy.run_module('engines', run_name='__main__')")
    run = subprocess.run([sys.executable, "-c", blocked, "bundle", "--inputs", "inputs.npy", "--settings",
                          json.dumps({"iterations": 3, "warmup": 1, "layer_iters": 2})],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    (measured,) = result["runs"]
    assert measured["latency_ms"]["count"] == 3
    assert [r["name"] for r in measured["layers"]["records"]] == ["/act/Relu"]
