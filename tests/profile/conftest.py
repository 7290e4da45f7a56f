"""Bundles of the tiny test classifier, exported once per session for every profile test."""
from __future__ import annotations

import pytest

import edgekit

TINY = "tests.fixtures.tiny:tiny_classifier"

# the fewest runs that still exercise every statistic: percentiles need samples, the per-layer pass
# needs a warm-up and a window
FAST = {"warmup": 2, "iterations": 8, "layer_iters": 3}


@pytest.fixture(scope="session")
def bundles(tmp_path_factory):
    """name -> bundle dir: onnx fp32, openvino fp32 and onnx fp32 with a dynamic batch."""
    root = tmp_path_factory.mktemp("profile-bundles")
    out = {}
    for name, target, kwargs in (("onnx", "onnx", {}), ("openvino", "openvino", {}),
                                 ("onnx-dyn", "onnx", {"dynamic_batch": True})):
        out[name] = edgekit.export(TINY, target, root / name, **kwargs).path
    return out
