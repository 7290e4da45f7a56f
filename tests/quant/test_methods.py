"""Range methods (min-max, percentile, entropy, MSE) on known distributions, and the calibration cache."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgekit.errors import UsageError
from edgekit.quant.calibrate import activation_tensors, cache_dir, calibrate, collect_stats
from edgekit.quant.options import Method, QuantOptions
from edgekit.quant.ranges import BINS, TensorStats, compute_range


def _stats(x: np.ndarray) -> TensorStats:
    lo, hi = float(x.min()), float(x.max())
    idx = np.clip(((x - lo) * (BINS / (hi - lo))).astype(np.int64), 0, BINS - 1)
    return TensorStats(lo, hi, np.bincount(idx, minlength=BINS))


def _qmse(x: np.ndarray, lo: float, hi: float) -> float:
    """Mean squared error of uint8 quantize-dequantize over [lo, hi]."""
    scale = (hi - lo) / 255
    zp = np.round(-lo / scale)
    q = np.clip(np.round(x / scale) + zp, 0, 255)
    return float(np.mean(((q - zp) * scale - x) ** 2))


@pytest.fixture(scope="module")
def heavy_tailed():
    """Mostly N(0, 1) with 0.01% outliers at +-60: the case where min-max wastes its steps."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(200_000)
    x[rng.choice(x.size, 20, replace=False)] = rng.choice([-60.0, 60.0], 20)
    return x


def test_minmax_is_the_observed_range(heavy_tailed):
    assert compute_range(_stats(heavy_tailed), Method.MINMAX) == (heavy_tailed.min(), heavy_tailed.max())


def test_ranges_always_contain_zero():
    x = np.random.default_rng(1).uniform(2.0, 5.0, 10_000)  # all positive: zero must still be representable
    for m in Method:
        lo, hi = compute_range(_stats(x), m)
        assert lo == 0.0 and hi >= 4.0, m


def test_percentile_clips_the_tails(heavy_tailed):
    s = _stats(heavy_tailed)
    lo, hi = compute_range(s, Method.PERCENTILE, percentile=99.9)
    # the 99.9th percentile of N(0, 1) is 3.09; the histogram's bin width here is 120 / 2048 = 0.06
    assert 2.9 < hi < 3.3 and -3.3 < lo < -2.9
    lo2, hi2 = compute_range(s, Method.PERCENTILE, percentile=100.0)
    assert hi2 == pytest.approx(heavy_tailed.max(), rel=1e-6) and lo2 == pytest.approx(heavy_tailed.min(), rel=1e-6)


def test_entropy_clips_isolated_outliers(heavy_tailed):
    lo, hi = compute_range(_stats(heavy_tailed), Method.ENTROPY)
    # KL keeps the shape of the body: 20 values at +-60 are not worth 8x coarser steps for 200k others
    assert 3.0 < hi < 0.2 * heavy_tailed.max() and 0.2 * heavy_tailed.min() < lo < -3.0


def test_mse_minimizes_the_roundtrip_error():
    x = np.random.default_rng(3).standard_t(3, 200_000)  # long tails, as activations have
    s = _stats(x)
    lo, hi = compute_range(s, Method.MSE)
    assert hi < 0.8 * x.max() and lo > 0.8 * x.min()  # clipped, unlike min-max
    errors = {m: _qmse(x, *compute_range(s, m)) for m in Method}
    # the int8 round-trip MSE over the data itself: MSE's range is the best of the four (2% for histogram binning)
    assert errors[Method.MSE] <= 1.02 * min(errors.values())
    assert errors[Method.MSE] < 0.8 * errors[Method.MINMAX]


@pytest.mark.parametrize("method", [Method.ENTROPY, Method.MSE])
def test_no_clipping_without_outliers(method):
    x = np.random.default_rng(2).uniform(-1.0, 1.0, 100_000)  # uniform: clipping only loses
    lo, hi = compute_range(_stats(x), method)
    assert hi > 0.9 and lo < -0.9


def test_method_parsing_and_option_checks():
    assert Method.parse("KL") is Method.ENTROPY and Method.parse("min-max") is Method.MINMAX
    with pytest.raises(UsageError, match="unknown calibration method 'median'"):
        Method.parse("median")
    with pytest.raises(UsageError, match="--percentile"):
        QuantOptions(percentile=30.0)
    with pytest.raises(UsageError, match="--max-drop"):
        QuantOptions(max_drop=-1.0)
    assert QuantOptions(method=Method.PERCENTILE, percentile=99.9).method_key() == "percentile-99.9"


def _tiny_model() -> onnx.ModelProto:
    """x (1, 4) -> Relu(x @ W) -> y, with one intermediate tensor."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"), helper.make_node("Relu", ["h"], ["y"], name="relu")],
        "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_collect_stats_matches_numpy():
    model = _tiny_model()
    w = numpy_helper.to_array(model.graph.initializer[0])
    xs = [np.random.default_rng(i).standard_normal((1, 4)).astype(np.float32) for i in range(5)]
    assert activation_tensors(model) == ["x", "h", "y"]
    stats = collect_stats(model, xs)
    h = np.concatenate([x @ w for x in xs])
    assert stats["h"].lo == pytest.approx(h.min(), abs=1e-6) and stats["h"].hi == pytest.approx(h.max(), abs=1e-6)
    assert stats["y"].lo == pytest.approx(max(h.min(), 0.0), abs=1e-6)
    assert stats["h"].hist.sum() == h.size


def test_calibration_cache_keyed_by_model_set_and_method(tmp_path):
    model = _tiny_model()
    xs = [np.random.default_rng(i).standard_normal((1, 4)).astype(np.float32) for i in range(4)]
    opts = QuantOptions(method=Method.ENTROPY)
    r1, info1 = calibrate(model, xs, "a" * 64, opts)
    r2, info2 = calibrate(model, xs, "a" * 64, opts)
    assert info1["cache"] == "miss" and info2["cache"] == "hit" and r1 == r2
    assert (cache_dir() / f"{info1['key']}.json").is_file() and str(cache_dir()).startswith(str(tmp_path))
    _, info3 = calibrate(model, xs, "a" * 64, QuantOptions(method=Method.MSE))  # another method: another entry
    _, info4 = calibrate(model, xs, "b" * 64, opts)  # another set
    model.graph.initializer[0].raw_data = np.zeros((4, 3), np.float32).tobytes()  # another model
    _, info5 = calibrate(model, xs, "a" * 64, opts)
    assert {info3["cache"], info4["cache"], info5["cache"]} == {"miss"}
    assert len({info1["key"], info3["key"], info4["key"], info5["key"]}) == 4
    _, off = calibrate(model, xs, "a" * 64, QuantOptions(cache=False))
    assert off["cache"] == "off"
