"""`edgekit tune`: the choice is the fastest candidate inside the budget by its own measurements, the budget
keeps candidates out (they are not timed), the cache makes a second run quick, the device may be remote."""
from __future__ import annotations

import json
import sys

import pytest

from edgekit.errors import UsageError
from edgekit.tune.tuner import tune
from tests.sshd import SSH_MARKS
from tests.tune.conftest import CLS

FAST = {"iterations": 10, "warmup": 2}


def _timed_in_budget(rows):
    return [r for r in rows if r["status"] == "timed"]


def test_tune_picks_the_fastest_in_budget_from_its_own_table(digits, cache, tmp_path):
    """Top-1 on the digits' labeled folder; every candidate within 1 point is timed head to head and the
    fastest by that measurement is written, its manifest saying why; a second run is served by the cache."""
    from edgekit import runtime

    out = tmp_path / "best"
    options = {"calib": str(digits / "cls" / "calib")}
    result = tune(CLS, out, targets=("onnx",), precisions=("fp32", "int8"), data=digits / "cls" / "val",
                  export_options=options, cache=cache, **FAST)
    timed = _timed_in_budget(result["rows"])
    assert {r["precision"] for r in timed} == {"fp32", "int8"}, result["rows"]
    fastest = min(timed, key=lambda r: r["latency_ms"])
    assert result["chosen"] == {"target": fastest["target"], "precision": fastest["precision"]}
    assert all(r["metric"] == "top-1" and r["drop"] <= 1.0 for r in timed)
    assert result["why"].startswith(f"{fastest['target']} {fastest['precision']}: the fastest of 2 candidates")
    opened = runtime.load(out)  # a valid bundle: schema, files, runtime
    try:
        assert opened.manifest.precision == fastest["precision"]
        recorded = opened.manifest["tune"]
        assert recorded["why"] == result["why"] and len(recorded["candidates"]) == 2
    finally:
        opened.close()
    assert json.loads((out / "tune.json").read_text())["chosen"] == result["chosen"]
    assert "| onnx | int8 |" in (out / "tune.md").read_text()
    assert "data:image/png;base64," in (out / "tune.html").read_text()
    assert all(r["cache"] == "miss" for r in result["rows"])
    again = tune(CLS, tmp_path / "again", targets=("onnx",), precisions=("fp32", "int8"),
                 data=digits / "cls" / "val", export_options=options, cache=cache, **FAST)
    assert all(r["cache"] == "hit" for r in again["rows"])


def _labeled_by(bundle, images, out):
    """The labeled folder (``out/<class>/<image>``) whose labels are ``bundle``'s own top-1: that bundle scores
    100% on it, so any candidate that disagrees with it on one image drops, by a measured amount."""
    import shutil

    import numpy as np
    from PIL import Image

    from edgekit import runtime

    opened = runtime.load(bundle)
    try:
        for path in sorted(images.glob("*/*.png")):
            with Image.open(path) as im:
                (top, _), = opened.classify(np.asarray(im.convert("RGB")), k=1)
            (out / str(top)).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, out / str(top) / path.name)
    finally:
        opened.close()
    return out


def test_the_budget_keeps_a_candidate_out_and_says_which_came_closest(digits, cache, tmp_path):
    """Top-1 on the digits relabeled by the fp32 export itself: int8 disagrees with fp32 on some images, so it
    drops; a budget below that drop leaves it untimed, and with only int8 there is nothing inside and the error
    names it as the closest."""
    import edgekit

    options = {"calib": str(digits / "cls" / "calib")}
    fp32 = edgekit.export(CLS, "onnx", tmp_path / "fp32", **options)
    data = _labeled_by(fp32.path, digits / "cls" / "val", tmp_path / "labeled")
    wide = tune(CLS, tmp_path / "wide", targets=("onnx",), precisions=("fp32", "int8"), data=data,
                export_options=options, cache=cache, max_drop=100, **FAST)
    by = {r["precision"]: r for r in wide["rows"]}
    assert by["fp32"]["value"] == 1.0 and by["fp32"]["drop"] == 0
    assert by["int8"]["drop"] > 0, "int8 agrees with fp32 on every image: nothing for the budget to keep out"
    budget = by["int8"]["drop"] / 2
    tight = tune(CLS, tmp_path / "tight", targets=("onnx",), precisions=("fp32", "int8"), data=data,
                 export_options=options, cache=cache, max_drop=budget, **FAST)
    row = next(r for r in tight["rows"] if r["precision"] == "int8")
    assert row["status"] == "over budget" and row.get("latency_ms") is None and "not timed" in row["reason"]
    assert tight["chosen"]["precision"] == "fp32"
    with pytest.raises(UsageError, match=rf"no candidate keeps the accuracy within --max-drop {budget:g} points; "
                                         rf"the closest was onnx int8"):
        tune(CLS, tmp_path / "none", targets=("onnx",), precisions=("int8",), data=data, export_options=options,
             cache=cache, max_drop=budget, **FAST)
    assert not (tmp_path / "none").exists()


def _marked(fn):
    for mark in SSH_MARKS:  # skipped where the test sshd cannot run
        fn = mark(fn)
    return fn


@_marked
def test_tune_times_on_a_device_over_ssh(ssh_host, cache, tmp_path):
    """--remote: the candidates are timed on the device (this machine behind the test's sshd)."""
    from edgekit.profiling.config import Remote

    remote = Remote.parse("device", ssh_host, sys.executable)
    result = tune("tests.fixtures.tiny:tiny_classifier", tmp_path / "r", targets=("onnx",),
                  precisions=("fp32", "int8"), remote=remote, cache=cache, **FAST)
    assert result["device"] == "device" and len(_timed_in_budget(result["rows"])) == 2


def test_bad_input_is_one_line(cli, tmp_path):
    code, _, err = cli("tune", "tests.fixtures.tiny:tiny_classifier", "--out", tmp_path / "o", "--max-drop", "-1")
    assert code == 2 and "--max-drop must be >= 0 points" in err
    code, _, err = cli("tune", "tests.fixtures.tiny:tiny_classifier", "--out", tmp_path / "o", "--data",
                       tmp_path / "nope")
    assert code == 2 and "is not a folder" in err
    code, _, err = cli("tune", "tests.fixtures.tiny:tiny_classifier", "--out", tmp_path / "o", "--precision", "int4")
    assert code == 2 and "int4" in err


def test_the_pareto_front_keeps_what_nothing_beats_on_both_axes():
    from edgekit.tune.report import pareto

    rows = [{"n": "a", "latency_ms": 1.0, "value": 0.80}, {"n": "b", "latency_ms": 2.0, "value": 0.90},
            {"n": "c", "latency_ms": 3.0, "value": 0.85}, {"n": "d", "latency_ms": 2.5, "value": 0.90},
            {"n": "e", "latency_ms": None, "value": 0.99}]
    assert [r["n"] for r in pareto(rows)] == ["a", "b"]  # c and d are slower than b and no better; e is untimed
