"""ExecuTorch and LiteRT on trained and zoo models (apart from test_mobile_targets.py, so that pytest-xdist runs
the two files on different workers): int8 through PT2E on the digits models against their fp32 bundles, and zoo
models at fp32 through the gate."""
from __future__ import annotations

import os

import pytest

import edgekit
from edgekit.models import _registry as reg
from tests.helpers import zoo_test_shape

pytest.importorskip("executorch", reason="the executorch extra is not installed: pip install 'edgekit[executorch]'")
pytest.importorskip("litert_torch", reason="the litert extra is not installed: pip install 'edgekit[litert]'")

CLS_DIGITS = "scripts.train_digits:tiny_classifier_digits"
SEG_DIGITS = "scripts.train_digits:tiny_segmenter_digits"
TARGETS = ("executorch", "litert")


def _top1(bundle, data):
    return edgekit.evaluate(bundle, data).to_dict()


@pytest.mark.slow
@pytest.mark.parametrize("target,source,kind", [("executorch", CLS_DIGITS, "cls"), ("litert", SEG_DIGITS, "seg")])
def test_int8_on_trained_digits_within_one_point(target, source, kind, digits_seg, tmp_path):
    """int8 through PT2E on the trained digits models: top-1 / mIoU on the labeled folder within 1 point of the
    fp32 bundle of the same target, and the islands and budget in the manifest."""
    calib, val = digits_seg / kind / "calib", digits_seg / kind / "val"
    fp32 = edgekit.export(source, target, tmp_path / "fp32", calib=calib)
    # the classifier through `edgekit quantize` of its fp32 bundle, the segmenter through `edgekit export`
    int8 = edgekit.quantize(fp32.path, tmp_path / "int8", calib=calib) if kind == "cls" else \
        edgekit.export(source, target, tmp_path / "int8", precision="int8", calib=calib)
    q = int8.manifest["quantization"]
    assert q["method"] == "pt2e" and q["budget"]["met"]
    assert q["layers"]["int8"] > 0 and set(q["islands"]) >= {"stem", "head"}
    assert int8.manifest["parity"]["passed"], int8.manifest["parity"]
    a, b = _top1(fp32.path, val), _top1(int8.path, val)
    assert a["metric"] == b["metric"] == ("top-1" if kind == "cls" else "mIoU")
    assert b["value"] >= a["value"] - 0.01, (a, b)


# CI: three families (linear attention, RepMixer + attention, SegFormer's encoder), the cheapest to lower here
# (13-20 s each; every family on both targets costs ~5 min of a suite that must stay within 15);
# EDGEKIT_FULL_ZOO=1: every zoo model through both targets
ZOO = [(m, t) for m in reg.list_models() for t in TARGETS] if os.environ.get("EDGEKIT_FULL_ZOO") else [
    ("efficientvit_b0", "litert"), ("fastvit_t8", "executorch"), ("mit_b0", "litert")]


@pytest.mark.slow
@pytest.mark.parametrize("name,target", ZOO)
def test_zoo_fp32(name, target, tmp_path):
    m = edgekit.export(name, target, tmp_path / "b", input_shape=zoo_test_shape(name)).manifest
    assert m["parity"]["measured"] and m["parity"]["passed"], m["parity"]
