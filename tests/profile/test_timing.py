"""The timing harness (edgekit/engines/timing.py): alternation, the A/A control, bootstrap intervals, verdicts."""
from __future__ import annotations

import time

import numpy as np
import pytest

from edgekit.engines import timing


def test_candidates_alternate_run_by_run_in_shuffled_order_and_a_control():
    calls = []
    names = ["a", "b", "c"]
    samples = timing.interleave({n: (lambda n=n: calls.append(n)) for n in names}, baseline="a", rounds=30, warmup=1)
    assert set(samples) == {"a", "b", "c", "a (A/A)"}
    assert calls[:4] == ["a", "b", "c", "a"]  # warm-up: each once (the control is the baseline's own callable)
    timed = calls[4:]
    assert all(sorted(timed[i:i + 4]) == ["a", "a", "b", "c"] for i in range(0, len(timed), 4))  # each round: all
    assert all(len(s.wall_ms) == len(s.cpu_ms) == 30 for s in samples.values())
    # the order is shuffled, not rotated: a rotated order gives each candidate one fixed predecessor, and a
    # predecessor's traces (spinning thread pools, caches) then bias one candidate against another
    rounds = [timed[i:i + 4] for i in range(0, len(timed), 4)]
    firsts = {r[0] for r in rounds}
    follows_b = {r[r.index("b") + 1] for r in rounds if r.index("b") < 3}
    assert firsts == {"a", "b", "c"} and follows_b == {"a", "c"}
    again = []
    timing.interleave({n: (lambda n=n: again.append(n)) for n in names}, baseline="a", rounds=30, warmup=1)
    assert again == calls  # seeded: the same order every time
    settled = []
    timing.interleave({n: (lambda n=n: settled.append(n)) for n in names}, baseline="a", rounds=2, warmup=0, settle=1,
                      per_round=2)
    assert settled == [n for n in calls[4:12] for _ in range(3)]  # each turn: one untimed run, then two timed
    with pytest.raises(ValueError, match="baseline 'd' is not one of the candidates"):
        timing.interleave({"a": lambda: None}, baseline="d")


def test_an_a_a_control_is_unbiased_when_runs_pay_for_their_predecessor():
    """A candidate that runs slower after another one (as PyTorch does after a runtime whose threads still spin):
    with the order shuffled, the baseline and its A/A copy see the same mix of predecessors, so the A/A ratio is
    within noise."""
    last = []

    def run(name, ms):
        def f():
            time.sleep((ms * (2 if last and last[-1] == "other" else 1)) / 1e3)
            last.append(name)
        return f

    samples = timing.interleave({"base": run("base", 1.0), "other": run("other", 1.0)}, baseline="base", rounds=40,
                                warmup=1)
    noise = timing.compare(samples, "base").noise
    assert noise.verdict == "within noise", noise


def test_ratio_interval_and_verdicts():
    rng = np.random.default_rng(1)
    base = list(10 + rng.normal(0, 0.3, 40))
    same = list(10 + rng.normal(0, 0.3, 40))
    half = list(5 + rng.normal(0, 0.15, 40))
    assert timing.ratio(base, same).verdict == "within noise"
    fast = timing.ratio(base, half)
    assert 1.9 < fast.low <= fast.value <= fast.high < 2.1 and fast.verdict == "faster"
    assert timing.ratio(half, base).verdict == "slower"
    wide = timing.ratio(base, list(9.5 + rng.normal(0, 3, 10)))  # 1.34x on paper: 10 runs with a 3 ms spread
    assert wide.value > 1.3 and wide.low < 1.0 < wide.high and wide.verdict == "within noise"


def test_compare_reports_the_noise_floor_and_needs_the_control():
    samples = {"a": timing.Samples([10.0, 10.2, 9.9, 10.1] * 5, [9.0] * 20),
               "a (A/A)": timing.Samples([10.1, 9.8, 10.0, 10.2] * 5, [9.0] * 20),
               "b": timing.Samples([5.0, 5.1, 4.9, 5.05] * 5, [4.5] * 20)}
    cmp = timing.compare(samples, "a")
    assert [r.name for r in cmp.rows] == ["a", "b"] and cmp.rows[0].ratio is None
    assert cmp.rows[1].ratio.verdict == "faster" and 0 < cmp.noise_floor < 0.05
    table = timing.markdown(cmp, "Measured on X.")
    assert "| b | 5.025 | 2.00x [" in table and "noise floor +-" in table and table.endswith("Measured on X.")
    assert timing.compare(samples, "a", clock="cpu").rows[1].ratio.value == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no A/A control for 'b'"):
        timing.compare(samples, "b")


def test_a_real_twice_as_slow_candidate_is_found_and_the_machine_is_named():
    samples = timing.interleave({"slow": lambda: time.sleep(0.004), "fast": lambda: time.sleep(0.002)},
                                baseline="slow", rounds=15, warmup=1)
    cmp = timing.compare(samples, "slow")
    (fast,) = [r for r in cmp.rows if r.name == "fast"]
    assert fast.ratio.verdict == "faster" and fast.ratio.low > 1.2  # sleeps: at least their length, ~2x apart
    assert max(samples["fast"].cpu_ms) < 1.0  # sleeping costs no CPU time: the two clocks differ
    line = timing.environment_line({"onnxruntime": "1.0", "openvino": None}, 2)
    assert line.startswith("Measured on ") and "onnxruntime 1.0" in line and "openvino" not in line
    assert "2 thread(s)" in line


def test_a_ratio_reads_as_a_table_cell_and_against_a_goal():
    assert timing.Ratio(1.2, 0.9, 1.5).cell() == "1.20x [0.90, 1.50] within noise"
    assert timing.Ratio(1.2, 1.1, 1.3).cell() == "1.20x [1.10, 1.30]"
    assert [timing.Ratio(1.6, 1.55, 1.7).against(1.5), timing.Ratio(1.3, 1.2, 1.45).against(1.5),
            timing.Ratio(1.5, 1.4, 1.7).against(1.5)] == ["meets", "MISSES", "cannot tell (the interval holds)"]
