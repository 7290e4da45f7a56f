"""Trained tiny models for the quantization tests.

Quantization is judged on trained weights: random weights have no activation outliers and no
logit margins, so they say nothing about what int8 costs. scripts/train_digits.py trains the tiny
hybrids (conv stem, BatchNorm, LayerNorm, softmax attention, GELU, linear head) on scikit-learn's
handwritten digits once and caches them (``$EDGEKIT_CACHE``, default ~/.cache/edgekit/digits); the ``digits``
and ``digits_seg`` fixtures of tests/conftest.py hand them out.
"""
from __future__ import annotations

import pytest

CLS = "scripts.train_digits:tiny_classifier_digits"
SEG = "scripts.train_digits:tiny_segmenter_digits"


@pytest.fixture(autouse=True)
def _private_calibration_cache(tmp_path, monkeypatch):
    """Each test calibrates afresh (cache hits are tested explicitly)."""
    monkeypatch.setenv("EDGEKIT_CALIB_CACHE", str(tmp_path / "calib-cache"))
