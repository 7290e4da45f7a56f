"""`edgekit sweep`: one table from a YAML grid, a failing cell recorded without stopping the sweep, resume after
an interrupt without redoing a finished cell, a real local Ray cluster, and one-line errors for a bad spec."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from edgekit.tune import sweep as sweep_module
from edgekit.tune.sweep import load_spec, run_sweep
from tests.sshd import free_port

ROOT = Path(__file__).resolve().parents[2]
SPEC = """\
models:
  - tests.fixtures.tiny:tiny_classifier
  - tests.fixtures.tiny:plain_classifier   # declares no input size: its cells fail, the sweep goes on
targets: [onnx]
precisions: [fp32, int8]
iterations: 5
warmup: 1
"""


def _spec(tmp_path: Path, text: str = SPEC) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def _mtimes(out: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}


def test_local_sweep_records_failures_writes_every_table_and_resumes(cli, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = cli("sweep", _spec(tmp_path), "--out", out, "--workers", "2")
    assert code == 1 and "error: 2 cells failed" in err, err
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 4 and all({"model", "target", "precision", "device", "status"} <= set(r) for r in rows)
    timed = [r for r in rows if r["model"].endswith("tiny_classifier")]
    assert [r["status"] for r in timed] == ["timed", "timed"] and all(r["latency_ms"] > 0 for r in timed)
    assert all(r["metric"] == "agreement (top-1)" and r["device"] == "local" for r in timed)
    failed = [r for r in rows if r["model"].endswith("plain_classifier")]
    assert all(r["status"] == "failed" and "--input-shape" in r["reason"] for r in failed)
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    best = (out / "best.md").read_text()
    assert "tests.fixtures.tiny:tiny_classifier | local | onnx |" in best
    assert (out / "pareto-local.png").read_bytes()[:4] == b"\x89PNG"
    before = _mtimes(out)
    code, stdout, _ = cli("sweep", _spec(tmp_path), "--out", out)
    assert code == 1 and "(4 cells were already done)" in stdout
    assert _mtimes(out) == before  # nothing redone


def test_an_interrupted_sweep_resumes_without_redoing_a_finished_cell(tmp_path, monkeypatch):
    spec = load_spec(_spec(tmp_path, SPEC.replace("  - tests.fixtures.tiny:plain_classifier", "  # none")))
    out = tmp_path / "out"
    real, calls = sweep_module.time_cell, []

    def interrupted(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(sweep_module, "time_cell", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, workers=1)
    first = _mtimes(out)
    assert len(first) == 1  # the cell timed before the interrupt
    monkeypatch.setattr(sweep_module, "time_cell", real)
    result = run_sweep(spec, out, workers=1)
    assert result["done_before"] == 1 and len(result["rows"]) == 2
    assert {k: v for k, v in _mtimes(out).items() if k in first} == first
    records = [json.loads(p.read_text()) for p in (out / "cache" / "exports").glob("*/record.json")]
    assert len(records) == 2  # each export made once: the resumed run found them in the cache


def test_sweep_on_a_local_ray_cluster(tmp_path):
    """A real Ray cluster started here with two CPUs and the custom resource of the local device: exports as
    Ray tasks, timings on the node holding `device:local`; a device no node holds fails its cells."""
    ray = pytest.importorskip("ray", reason="the Ray executor needs ray (pip install 'edgekit[ray]')")
    ray.init(num_cpus=2, resources={"device:local": 1}, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    try:
        spec = load_spec(_spec(tmp_path, SPEC.replace("  - tests.fixtures.tiny:plain_classifier", "  # none")))
        result = run_sweep(spec, tmp_path / "out", executor="ray")
        rows = result["rows"]
        assert [r["status"] for r in rows] == ["timed", "timed"] and result["failed"] == 0, rows
        assert all(r["latency_ms"] > 0 for r in rows)
        executor = sweep_module.RayExecutor(None)
        cell = sweep_module.Cell({"source": "m"}, "onnx", "fp32", "nano")
        ((_, record),) = list(executor.time_all({"nano": [(cell, {"bundle": "b"})]}, {"nano": None}, spec))
        assert record["status"] == "failed" and "ray start --resources='{\"device:nano\": 1}'" in record["reason"]
    finally:
        ray.shutdown()


@pytest.mark.parametrize("text, message", [
    ("models: [a\n", "is not valid YAML at line"),
    ("targets: [onnx]\nprecisions: [fp32]\n", "`models` is missing or not a list"),
    ("models: [m]\ntargets: [tflite]\nprecisions: [fp32]\n", "tflite"),
    ("models: [m]\ntargets: [onnx]\nprecisions: [int4]\n", "int4"),
    ("models: [m]\ntargets: [onnx]\nprecisions: [fp32]\ncolour: red\n", "unknown key 'colour'"),
    ("models: [m]\ntargets: [onnx]\nprecisions: [fp32]\nmax_drop: -2\n", "max_drop >= 0"),
])
def test_a_bad_spec_is_one_line(cli, tmp_path, text, message):
    code, _, err = cli("sweep", _spec(tmp_path, text), "--out", tmp_path / "out")
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1 and message in lines[0], err


def test_a_device_that_does_not_answer_is_one_line(cli, tmp_path):
    dead = f"root@127.0.0.1:{free_port()}"
    spec = _spec(tmp_path, f"models: [m]\ntargets: [onnx]\nprecisions: [fp32]\ndevices: [{dead}]\n")
    code, _, err = cli("sweep", spec, "--out", tmp_path / "out")
    assert code == 2 and "does not answer over SSH" in err, err
