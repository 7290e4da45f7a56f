"""The benchmark scripts' tables say what the timing harness found (the measuring itself is exercised by
tests/profile/test_timing.py and by running the scripts)."""
from __future__ import annotations

from scripts import bench_rewrites as br


def _row(interval, noise=(1.0, 0.95, 1.05)):
    parity = {"cosine_min": 1.0, "max_abs_rel": 1e-7, "passed": True}
    return br.Row("m", "onnx", "fp32", 2, naive_ms=2.0, edgekit_ms=1.0, gflop=1.0,
                  parity={"naive": parity, "edgekit": parity}, applied={"fuse_gelu": 2}, interval=list(interval),
                  noise=list(noise))


def test_rewrite_table_marks_what_lies_inside_the_noise():
    table = br.table([_row((1.8, 2.2)), _row((0.9, 2.5))])
    faster, noisy = table.splitlines()[2:]
    assert "| **2.00x [1.80, 2.20]** | [0.95, 1.05] |" in faster
    assert "| 2.00x [0.90, 2.50] within noise |" in noisy
    slower = _row((0.4, 0.6))
    slower.naive_ms, slower.edgekit_ms = 1.0, 2.0
    assert any(line.startswith("SLOWER") for line in br.verdict([slower]))
    assert not any(line.startswith("SLOWER") for line in br.verdict([_row((0.9, 2.5))]))


def test_rule_switch_leaves_out_one_rule_and_restores_the_registry():
    from edgekit.config import Target
    from edgekit.rewrite import registry

    before = [r.name for r in registry.rules_for(Target.ONNX)]
    assert "fuse_gelu" in before
    with br.without("fuse_gelu"):
        assert [r.name for r in registry.rules_for(Target.ONNX)] == [n for n in before if n != "fuse_gelu"]
    assert [r.name for r in registry.rules_for(Target.ONNX)] == before


def test_quant_goal_is_judged_on_the_interval():
    from scripts import bench_quant as bq

    def row(low, high, sp=1.6):
        return {"model": "m", "target": "onnx", "variant": "int8", "speedup": {"wall2": sp, "cpu1": sp},
                "interval": {"wall2": [low, high]}, "torch_metric": 0.9, "metric": 0.9}

    meets, misses, unsure, noisy = bq.verdict([row(1.55, 1.7), row(1.2, 1.45, 1.3), row(1.4, 1.7), row(0.9, 1.2, 1.1)])
    assert "speed meets 1.5x" in meets and "speed MISSES 1.5x" in misses
    assert "cannot tell" in unsure and "within noise of fp32" in noisy and "MISSES" in noisy
