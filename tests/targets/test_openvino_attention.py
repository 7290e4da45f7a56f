"""OpenVINO: attention with as many heads as tokens, through the real pipeline
(edgekit.rewrite.rules.square_transpose_rank5)."""
from __future__ import annotations

import pytest

import edgekit
from edgekit.errors import ParityError

SOURCES = ["tests.fixtures.attention:heads_equal_tokens", "tests.fixtures.attention:heads_equal_tokens_multi_query"]


@pytest.mark.parametrize("source", SOURCES, ids=["packed_qkv", "multi_query"])
def test_heads_equal_tokens_matches_pytorch(source, tmp_path):
    bundle = edgekit.export(source, "openvino", tmp_path / "b", input_shape="1x3x64x64", calib_size=2)
    assert bundle.manifest["rewrites"]["rules"]["square_transpose_rank5"] >= 1  # the output swap (and q's)
    assert bundle.parity["passed"] and bundle.parity["cosine_min"] > 0.99999, bundle.parity


@pytest.mark.parametrize("source", SOURCES, ids=["packed_qkv", "multi_query"])
def test_without_the_rewrite_openvino_still_miscomputes_it(source, tmp_path):
    """The upstream bug the OpenVINO pipeline works around; when this starts passing, OpenVINO fixed it and
    square_transpose_rank5 can leave OpenVINO's pipeline (docs/rewrites.md)."""
    with pytest.raises(ParityError, match="parity gate failed for openvino"):
        edgekit.export(source, "openvino", tmp_path / "b", input_shape="1x3x64x64", calib_size=2, rewrite=False)
